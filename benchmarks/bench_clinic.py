"""Server time of the clinic workspace's schedule pages: a week of 3 clinicians and 300
appointments, opened by several staff sessions at once.

One app with SMART on, in process (ASGI on one event loop, as one uvicorn worker serves it),
on the embedded store and Redis. The clinic (a Location in Europe/London, a service, three
clinicians with their Schedules) and next week's 300 booked Appointments (Monday to Friday,
20 a day each, 100 patients) are written through the store first. Four front-desk sessions
sign in through the workspace (the whole code + PKCE round); one of them opens the week of
all three clinicians alone (a page's own server time), then all four open, at once and over
and over: the week of all three clinicians (the figure the target is about), the week of
one, a day of all three, and the requests page; then three practitioners each open their
own week and day. Printed per page: p50 and p95 of the time from request to answer (the
server's time: no socket, no browser), the FHIR calls the page made (`X-Portal-Fhir-Calls`:
a fixed number, never one per row), and the CPU time per page of this process (the app),
the embedded store and Redis (the store's CPU is the machine's, not the app's).
Target: every p95 under 150 ms.

Run: `.venv/bin/python -m benchmarks.bench_clinic [rounds]` (default 20 rounds per session).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from benchmarks.bench_core import _cpu_seconds
from benchmarks.bench_portal import PASSWORD, ROOT, Phases, _sign_in, run_signed_in_bench
from fhir_server.app import create_app
from fhir_server.auth.users import Accounts
from fhir_server.fhir.instants import fhir_instant
from fhir_server.notifications import celery_app
from fhir_server.settings import Settings

CLINICIANS = 3
APPOINTMENTS = 300
PATIENTS = 100
DESKS = 4
TARGET_MS = 150
ZONE = ZoneInfo("Europe/London")
TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"


async def _clinic(app: Any, settings: Settings, monday: date) -> tuple[list[str], list[str]]:
    """The clinic, its week of appointments and the logins: (front desk, practitioners)."""
    store, accounts = app.state.services.store, Accounts(app.state.auth.store, settings)

    async def create(resource: dict[str, Any]) -> str:
        return str((await store.create(resource)).id)

    location = await create(
        {
            "resourceType": "Location",
            "name": "Bench Clinic",
            "extension": [{"url": TIMEZONE, "valueCode": str(ZONE)}],
        }
    )
    service = await create({"resourceType": "HealthcareService", "name": "GP appointment"})
    patients = [
        await create(
            {"resourceType": "Patient", "name": [{"family": f"Bench{n}", "given": ["Pat"]}]}
        )
        for n in range(PATIENTS)
    ]
    roles, doctors = [], []
    for n in range(CLINICIANS):
        practitioner = await create(
            {"resourceType": "Practitioner", "name": [{"family": f"Doc{n}", "given": ["Dr"]}]}
        )
        role = await create(
            {
                "resourceType": "PractitionerRole",
                "practitioner": {"reference": f"Practitioner/{practitioner}"},
                "location": [{"reference": f"Location/{location}"}],
            }
        )
        actors = [
            f"PractitionerRole/{role}",
            f"Location/{location}",
            f"HealthcareService/{service}",
        ]
        await create(
            {
                "resourceType": "Schedule",
                "active": True,
                "actor": [{"reference": a} for a in actors],
            }
        )
        roles.append(actors)
        await accounts.add(
            f"bench-doc-{n}", PASSWORD, "practitioner", f"Practitioner/{practitioner}"
        )
        doctors.append(f"bench-doc-{n}")
    per_day = APPOINTMENTS // CLINICIANS // 5
    for n in range(APPOINTMENTS):
        clinician, rest = divmod(n, APPOINTMENTS // CLINICIANS)
        day, index = divmod(rest, per_day)
        start = datetime.combine(monday + timedelta(days=day), time(9), ZONE) + timedelta(
            minutes=20 * index
        )
        refs = [f"Patient/{patients[n % PATIENTS]}", *roles[clinician]]
        await create(
            {
                "resourceType": "Appointment",
                "status": "booked",
                "start": fhir_instant(start.astimezone(UTC)),
                "end": fhir_instant((start + timedelta(minutes=20)).astimezone(UTC)),
                "participant": [{"actor": {"reference": r}, "status": "accepted"} for r in refs],
            }
        )
    desks = []
    for n in range(DESKS):
        await accounts.add(f"bench-desk-{n}", PASSWORD, "frontdesk", None)
        desks.append(f"bench-desk-{n}")
    return desks, doctors


async def _signed_in(transport: httpx.ASGITransport, names: list[str]) -> list[httpx.AsyncClient]:
    clients = [httpx.AsyncClient(transport=transport, base_url=ROOT) for _ in names]
    for http, name in zip(clients, names, strict=True):
        await _sign_in(http, name, site="clinic")
    return clients


async def _run(settings: Settings, rounds: int, store_pid: int) -> None:
    app = create_app(settings)
    today = datetime.now(ZONE).date()
    monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
    async with app.router.lifespan_context(app):
        desks, doctors = await _clinic(app, settings, monday)
        transport = httpx.ASGITransport(app=app)
        desk_clients = await _signed_in(transport, desks)
        doctor_clients = await _signed_in(transport, doctors)
        redis_pid = celery_app.embedded_redis_pid(settings.data_dir)
        assert redis_pid is not None
        cpu = _cpu_seconds(os.getpid(), store_pid, redis_pid)
        week = f"/clinic/schedule/week?day={monday.isoformat()}"
        day = f"/clinic/schedule?day={monday.isoformat()}"
        first = (await desk_clients[0].get(week)).text
        one = first.split('<option value="PractitionerRole/', 2)[1].split('"', 1)[0]
        print(
            f"bench_clinic: {CLINICIANS} clinicians, {APPOINTMENTS} appointments in the week; "
            f"{DESKS} front-desk sessions at once, {rounds} pages each"
        )
        alone = Phases(desk_clients[:1], rounds, cpu, TARGET_MS)
        await alone.page("week, all, one session", lambda _n: week)
        desk = Phases(desk_clients, rounds, cpu, TARGET_MS)
        for label, path in (
            ("week, all clinicians", week),
            ("week, one clinician", f"{week}&clinician=PractitionerRole/{one}"),
            ("day, all clinicians", day),
            ("requests", "/clinic/requests"),
        ):
            await desk.page(label, lambda _n, path=path: path)
        print(f"  {CLINICIANS} practitioners at once, each their own schedule")
        doctor = Phases(doctor_clients, rounds, cpu, TARGET_MS)
        await doctor.page("week, own", lambda _n: week)
        await doctor.page("day, own (landing)", lambda _n: day)
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for http in [*desk_clients, *doctor_clients]:
            await http.aclose()


def main() -> None:
    run_signed_in_bench("bench-clinic", _run, rounds=20)


if __name__ == "__main__":
    main()
