"""Reports over two years of a busy clinic: report time and rollup build time (issue 17).

For each size (default 10,000 and 100,000 appointments; `--sizes 1000000` is the issue's
figure) it loads that many appointments spread over two years (20 practitioners at 3
locations, 6 services, 3 appointment types, a tenth as many patients with ages, genders
and postal districts; 78% fulfilled, 8% noshow, 14% cancelled; booked 0-21 days ahead
through the four channels), written straight into the store as first versions with
history rows (`store.bulk_load`, each at the instant it was booked; history rows only:
the rollups read nothing else, and current rows would double the load time), plus 4 Slots
a day of 20 Schedules over the two years and the next 60 days, each written 60 days ahead
(history rows too). Then it measures:
- the time to build the rollups from scratch (`reporting.rollups.rebuild`);
- every Measure's `$evaluate-measure` work over the whole two years: without
  stratifier, by practitioner, for one practitioner by age band, and by month (the
  median and max of 3 runs of each; the slowest is the report time, target < 1 s);
- a follow run that finds nothing new (what the operation does before each report), and
  one that finds a few appointments just written;
- `$evaluate-measure` through the HTTP API (the app in process, over ASGI, with a front
  desk user's SMART token: access gate, audit, follow, report): the same variants, median
  and max of 3 runs each (the slowest single run is the figure the target applies to).
The store is opened as the app opens it: the history indexes the app creates on start
are built right after the load (faster than keeping them up during it); the follower's
range queries on the history are answered from them. Each figure is printed with the
machine's load average at that moment (compare ratios within one run on a shared
machine). Nothing here asserts on time.

Run: python -m benchmarks.bench_reports [--sizes 10000,100000,1000000] [--no-sweep]
(`--no-sweep` skips timing every Measure variant directly: the API figures remain).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx

from benchmarks.bench_core import embedded_store
from fhir_server.app import create_app
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.instants import fhir_instant, parse_instant
from fhir_server.notifications import celery_app
from fhir_server.reporting import measures, rollups
from fhir_server.reporting.channel import CANCEL_REASON_SYSTEM, CHANNEL_URL
from fhir_server.reporting.facts import CANCELLATION_DATE
from fhir_server.settings import Settings
from fhir_server.store.bulk_load import insert_first_versions
from fhir_server.store.clock import to_instant
from fhir_server.store.database import connect
from fhir_server.store.report_store import ReportStore
from fhir_server.store.resources import ResourceStore

ZONE = ZoneInfo("UTC")
DAYS = 730
FIRST_DAY = datetime.now(UTC).date() - timedelta(days=DAYS + 1)  # two years up to yesterday
PRACTITIONERS = 20
LOCATIONS = 3
SERVICES = 6
BATCH = 20_000
SLOTS_PER_DAY = 4
SLOTS_AHEAD = 60  # days: how far ahead each Slot was generated
RUNS = 3
NEW = 5  # appointments written before timing a follow that finds a few new
BASE = "http://bench/fhir"
_AREAS = ("SW", "NW", "E", "N")


def _patients(count: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Patient",
            "id": f"p{n}",
            "gender": rng.choice(("female", "male", "other")),
            "birthDate": f"{rng.randint(1930, 2024)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            "address": [
                {"postalCode": f"{rng.choice(('SW', 'NW', 'E', 'N'))}{rng.randint(1, 20)} 1AA"}
            ],
        }
        for n in range(count)
    ]


def _appointment(n: int, patients: int, rng: random.Random) -> dict[str, Any]:
    doctor = rng.randrange(PRACTITIONERS)
    day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
    start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(
        minutes=15 * rng.randrange(36)
    )
    created = start - timedelta(days=min(int(rng.expovariate(1 / 4)), 21), hours=1)
    status = rng.choices(("fulfilled", "noshow", "cancelled"), (78, 8, 14))[0]
    body: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": f"a{n}",
        "status": status,
        "created": fhir_instant(created),
        "start": fhir_instant(start),
        "end": fhir_instant(start + timedelta(minutes=15)),
        "appointmentType": {"coding": [{"code": rng.choice(("ROUTINE", "FOLLOWUP", "WALKIN"))}]},
        "extension": [
            {"url": CHANNEL_URL, "valueCode": rng.choice(("portal", "clinic", "app", "ehr"))}
        ],
        "participant": [
            {"actor": {"reference": f"Patient/p{rng.randrange(patients)}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/dr{doctor}"}, "status": "accepted"},
            {"actor": {"reference": f"Location/l{doctor % LOCATIONS}"}, "status": "accepted"},
            {
                "actor": {"reference": f"HealthcareService/s{doctor % SERVICES}"},
                "status": "accepted",
            },
        ],
    }
    if status == "cancelled":
        code = rng.choice(("pat", "prov"))
        body["cancelationReason"] = {"coding": [{"system": CANCEL_REASON_SYSTEM, "code": code}]}
        cancelled = max(created, start - timedelta(hours=rng.choice((2, 12, 30, 72))))
        body["extension"].append(
            {"url": CANCELLATION_DATE, "valueDateTime": fhir_instant(cancelled)}
        )
    return body


def _slots(first: date, last: date) -> list[tuple[dict[str, Any], str]]:
    """Each Schedule's Slots from `first` to `last`, each written `SLOTS_AHEAD` days before
    its day (a rolling generation), so every week of the two years has third next available
    to measure; with the instant each was written."""
    out = []
    for schedule in range(PRACTITIONERS):
        for day in range((last - first).days + 1):
            local = first + timedelta(days=day)
            midnight = datetime.combine(local, datetime.min.time(), UTC)
            written = fhir_instant(midnight - timedelta(days=SLOTS_AHEAD))
            for n in range(SLOTS_PER_DAY):
                start = midnight + timedelta(hours=8, minutes=30 * n)
                slot = {
                    "resourceType": "Slot",
                    "id": f"slot-{schedule}-{day}-{n}",
                    "schedule": {"reference": f"Schedule/sch{schedule}"},
                    "status": "busy" if (day + n) % 3 == 0 else "free",
                    "start": fhir_instant(start),
                    "end": fhir_instant(start + timedelta(minutes=30)),
                }
                out.append((slot, written))
    return out


async def _load(store: ResourceStore, size: int) -> None:
    rng = random.Random(size)
    patients = max(100, size // 10)
    base = datetime.now(UTC) - timedelta(days=DAYS + 90)  # when the directory was written
    at = to_instant(base)
    await insert_first_versions(store, [(p, at) for p in _patients(patients, rng)])
    schedules = [
        {
            "resourceType": "Schedule",
            "id": f"sch{n}",
            "actor": [
                {"reference": f"Practitioner/dr{n}"},
                {"reference": f"HealthcareService/s{n % SERVICES}"},
            ],
        }
        for n in range(PRACTITIONERS)
    ]
    await insert_first_versions(store, [(s, at) for s in schedules])
    started = time.perf_counter()
    for first in range(0, size, BATCH):
        # Each written when it was booked (its `created`), as a history written over time.
        bodies = [_appointment(n, patients, rng) for n in range(first, min(first + BATCH, size))]
        batch = [(b, to_instant(parse_instant(b["created"]))) for b in bodies]
        await insert_first_versions(store, batch, current=False)  # the rollups read history
        print(f"\r  loading: {min(first + BATCH, size):,}/{size:,}", end="", flush=True)
    today = datetime.now(UTC).date()
    slots = _slots(FIRST_DAY, today + timedelta(days=SLOTS_AHEAD - 1))
    await insert_first_versions(store, slots, current=False)
    print(f"\r  loaded {size:,} appointments in {time.perf_counter() - started:.0f} s")


def _requests(period: tuple[date, date]) -> list[measures.Request]:
    start, end = period
    out = []
    for definition in measures.DEFINITIONS:
        variants: list[tuple[str | None, tuple[str, ...]]] = [(None, ())]
        if "practitioner" in definition.stratifiers:
            variants.append((None, ("practitioner",)))
        if "age-band" in definition.stratifiers:
            variants.append(("Practitioner/dr3", ("age-band",)))
        if "period-month" in definition.stratifiers:
            variants.append((None, ("period-month",)))
        if definition.metric is None:  # third next available: by week, always
            variants.append(("HealthcareService/s1", ("service",)))
        out += [measures.Request(definition.id, start, end, s, strata) for s, strata in variants]
    return out


def _load_average() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


async def _time(work: Any) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def _sweep(store: ResourceStore, period: tuple[date, date]) -> dict[str, float]:
    """Every Measure variant evaluated directly on the rollups (no follow): median of RUNS."""
    reports = ReportStore(store)
    today = datetime.now(UTC).date()
    times: dict[str, float] = {}
    for request in _requests(period):
        runs = [
            await _time(measures.evaluate(reports, request, late_hours=24, today=today))
            for _ in range(RUNS)
        ]
        times[_label(request)] = statistics.median(runs)
        print(
            f"    {_label(request):<58} median {statistics.median(runs) * 1000:5.0f} ms, "
            f"max {max(runs) * 1000:5.0f} ms ({_load_average()})"
        )
    return times


def _label(request: measures.Request) -> str:
    return f"{request.measure} {request.subject or ''} {','.join(request.stratifiers)}".strip()


async def _follows(store: ResourceStore, size: int) -> tuple[list[float], list[float]]:
    """Follow runs that find nothing new, then runs that each find NEW appointments written
    just before (through the store, as the API writes them)."""
    idle = [await _time(rollups.follow(store, ZONE)) for _ in range(RUNS)]
    rng = random.Random(-size)
    busy = []
    for run in range(RUNS):
        for n in range(NEW):
            await store.create(_appointment(n, max(100, size // 10), rng), rid=f"new{run}-{n}")
        busy.append(await _time(rollups.follow(store, ZONE)))
    return idle, busy


async def _api(settings: Settings, period: tuple[date, date]) -> dict[str, list[float]]:
    """`$evaluate-measure` of every Measure variant through the HTTP API: RUNS times each."""
    app = create_app(settings)
    times: dict[str, list[float]] = {}
    try:
        await _api_runs(app, period, times)
    finally:
        celery_app.stop_embedded(settings.data_dir)  # the Redis the app started
    return times


async def _api_runs(app: Any, period: tuple[date, date], times: dict[str, list[float]]) -> None:
    """Into `times`: the app started, a front desk user signed in, every variant asked."""
    async with app.router.lifespan_context(app):
        auth = app.state.auth
        grant = {
            "client_id": "bench",
            "sub": "desk-bench",
            "scope": "openid fhirUser user/*.cruds",
            "role": "frontdesk",
            "family": secrets.token_hex(8),
        }
        issued = auth.tokens.access_token(grant)
        await auth.store.save_access({**grant, "_id": issued.jti, "expires_at": issued.expires_at})
        headers = {"Authorization": f"Bearer {issued.token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for request in _requests(period):
                query: list[tuple[str, str]] = [
                    ("periodStart", request.start.isoformat()),
                    ("periodEnd", request.end.isoformat()),
                ]
                query += [("subject", request.subject)] if request.subject else []
                query += [("stratifier", s) for s in request.stratifiers]
                url = f"{BASE}/Measure/{request.measure}/$evaluate-measure?{urlencode(query)}"
                runs = []
                for _ in range(RUNS):
                    started = time.perf_counter()
                    response = await http.get(url, headers=headers)
                    runs.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise RuntimeError(f"{url}: {response.status_code} {response.text:.300}")
                times[_label(request)] = runs


async def run_size(uri: str, data_dir: Path, size: int, sweep: bool) -> dict[str, Any]:
    name = f"bench{size}"
    database = await connect(uri, name)
    store = ResourceStore(database, indexer=ResourceIndexer(BASE))
    try:
        await _load(store, size)
        indexes = await _time(store.ensure_indexes())
        print(f"  history indexes built in {indexes:.1f} s ({_load_average()})")

        def progress(stream: str, read: int) -> None:
            print(f"\r  rebuilding: {stream} {read:,} versions", end="", flush=True)

        build = await _time(rollups.rebuild(store, ZONE, progress))
        print(f"\r  rollups built from scratch in {build:.1f} s ({_load_average()}){' ' * 20}")
        period = (FIRST_DAY, FIRST_DAY + timedelta(days=DAYS - 1))
        times = await _sweep(store, period) if sweep else {}
        idle, busy = await _follows(store, size)
        print(
            f"    follow, nothing new: median {statistics.median(idle) * 1000:.0f} ms, "
            f"max {max(idle) * 1000:.0f} ms; {NEW} new: median "
            f"{statistics.median(busy) * 1000:.0f} ms, max {max(busy) * 1000:.0f} ms "
            f"({_load_average()})"
        )
        settings = Settings(
            mongodb_uri=uri,
            database=name,
            public_base_url=BASE,
            data_dir=data_dir / name,
            log_level="WARNING",
            auth_enabled=True,
            report_timezone=str(ZONE),
        )
        api = await _api(settings, period)
        for label, runs in api.items():
            print(
                f"    API {label:<54} median {statistics.median(runs) * 1000:5.0f} ms, "
                f"max {max(runs) * 1000:5.0f} ms ({_load_average()})"
            )
        return {
            "size": size,
            "build": build,
            "times": times,
            "idle": idle,
            "busy": busy,
            "api": api,
        }
    finally:
        await database.client.drop_database(database.db.name)
        await database.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="appointments, comma-separated")
    parser.add_argument(
        "--no-sweep", action="store_true", help="skip timing every Measure directly"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"bench_reports ({platform.python_implementation()} {platform.python_version()})")
    results = []
    with embedded_store("fhir-bench-reports-") as (store_server, data_dir):
        for size in sizes:
            print(f"{size:,} appointments over two years:")
            result = asyncio.run(run_size(store_server.uri, data_dir, size, not args.no_sweep))
            results.append(result)
    print("Summary (target: any report < 1 s; the API figure includes the follow)")
    for result in results:
        api = {label: statistics.median(runs) for label, runs in result["api"].items()}
        slowest = max(api.items(), key=lambda item: item[1])
        single = max(max(runs) for runs in result["api"].values())
        direct = (
            f"report alone slowest {max(result['times'].values()) * 1000:.0f} ms; "
            if result["times"]
            else ""
        )
        met = "met" if single < 1 else "NOT met"
        print(
            f"  {result['size']:>9,} appointments: $evaluate-measure median "
            f"{statistics.median(api.values()) * 1000:.0f} ms, slowest median "
            f"{slowest[1] * 1000:.0f} ms ({slowest[0]}), slowest single run "
            f"{single * 1000:.0f} ms ({met}); {direct}"
            f"follow nothing new {statistics.median(result['idle']) * 1000:.0f} ms, "
            f"{NEW} new {statistics.median(result['busy']) * 1000:.0f} ms; "
            f"rollups from scratch {result['build']:.1f} s"
        )


if __name__ == "__main__":
    main()
