"""Many clients booking the same Slot through two server processes on one store.

Two uvicorn processes share the embedded store (FHIR_MONGODB_URI), so no
in-process lock can help: only the store-level compare-and-set on the Slot
decides. Exactly one request may win; the Slot and the Appointments must agree.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from fhir_server.settings import Settings
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore
from fhir_server.store.slots import appointments_on_slot
from tests.integration.scheduling_setup import appointment, hours_from_now, instant

pytestmark = pytest.mark.slow  # races between server processes

_SERVE = (
    "import sys, uvicorn; from fhir_server.app import create_app; "
    "from fhir_server.settings import Settings; "
    "uvicorn.run(create_app(Settings()), host='127.0.0.1', port=int(sys.argv[1]), "
    "log_level='warning')"
)
REQUESTS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "server process exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture(scope="module")
def two_servers(settings_factory: Callable[..., Settings]) -> Iterator[tuple[list[str], Settings]]:
    settings = settings_factory()
    env = {
        **os.environ,
        "FHIR_MONGODB_URI": str(settings.mongodb_uri),
        "FHIR_DATABASE": settings.database,
        "FHIR_DATA_DIR": str(settings.data_dir),
        "FHIR_LOG_LEVEL": "WARNING",
        "FHIR_AUTH_ENABLED": "false",
    }
    processes, urls = [], []
    for _ in range(2):
        port = _free_port()
        process = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], env=env)
        processes.append(process)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait(url, process)
        yield urls, settings
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def _post(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/fhir/{resource['resourceType']}",
        json=resource,
        headers={"content-type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _schedule(url: str) -> dict[str, Any]:
    location = _post(url, {"resourceType": "Location", "name": "Clinic"})
    actor = [{"reference": f"Location/{location['id']}"}]
    return _post(url, {"resourceType": "Schedule", "active": True, "actor": actor})


async def _race(urls: list[str], bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
        return await asyncio.gather(
            *(
                http.post(
                    f"{urls[n % 2]}/fhir/Appointment",
                    json=body,
                    headers={"content-type": "application/fhir+json"},
                )
                for n, body in enumerate(bodies)
            )
        )


async def _appointments_holding(settings: Settings, slot_id: str) -> list[str]:
    database = await connect(str(settings.mongodb_uri), settings.database)
    try:
        found = await appointments_on_slot(ResourceStore(database), f"Slot/{slot_id}")
        return [a.id for a in found]
    finally:
        await database.close()


def test_sixty_clients_on_two_processes_book_one_slot_once(
    two_servers: tuple[list[str], Settings],
) -> None:
    urls, settings = two_servers
    schedule = _schedule(urls[0])
    start = hours_from_now(30)
    slot = _post(
        urls[1],
        {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{schedule['id']}"},
            "status": "free",
            "start": instant(start),
            "end": instant(start + timedelta(minutes=30)),
        },
    )
    patients = [
        _post(urls[n % len(urls)], {"resourceType": "Patient", "name": [{"family": f"P{n}"}]})["id"]
        for n in range(REQUESTS)
    ]
    bodies = [appointment(pid, slot) for pid in patients]
    responses = asyncio.run(_race(urls, bodies))

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == REQUESTS - 1, statuses
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["resourceType"] == "OperationOutcome"
    winner = next(r.json() for r in responses if r.status_code == 201)

    assert httpx.get(f"{urls[0]}/fhir/Slot/{slot['id']}").json()["status"] == "busy"
    holding = asyncio.run(_appointments_holding(settings, slot["id"]))
    assert holding == [winner["id"]]


def test_concurrent_bookings_of_distinct_slots_all_succeed(
    two_servers: tuple[list[str], Settings],
) -> None:
    urls, _ = two_servers
    schedule = _schedule(urls[0])
    slots = _post_slots(urls, schedule["id"], _every_half_hour(60, 20))
    patients = [
        _post(urls[0], {"resourceType": "Patient", "name": [{"family": f"D{n}"}]})["id"]
        for n in range(len(slots))
    ]
    bodies = [appointment(pid, slot) for pid, slot in zip(patients, slots, strict=True)]
    responses = asyncio.run(_race(urls, bodies))
    assert [r.status_code for r in responses] == [201] * len(slots)


def _every_half_hour(hours_ahead: int, count: int) -> list[datetime]:
    base = hours_from_now(hours_ahead)
    return [base + timedelta(minutes=30 * n) for n in range(count)]


def _post_slots(urls: list[str], schedule_id: str, starts: list[datetime]) -> list[dict[str, Any]]:
    """Free 30-minute Slots at these starts, created through the servers in turn."""
    return [
        _post(
            urls[n % len(urls)],
            {
                "resourceType": "Slot",
                "schedule": {"reference": f"Schedule/{schedule_id}"},
                "status": "free",
                "start": instant(start),
                "end": instant(start + timedelta(minutes=30)),
            },
        )
        for n, start in enumerate(starts)
    ]


async def _send(
    urls: list[str], method: str, paths: list[str], bodies: list[Any], content_type: str
) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
        return await asyncio.gather(
            *(
                http.request(
                    method,
                    f"{urls[n % 2]}{path}",
                    json=body,
                    headers={"content-type": content_type},
                )
                for n, (path, body) in enumerate(zip(paths, bodies, strict=True))
            )
        )


def test_concurrent_holds_of_one_slot_leave_one_hold(
    two_servers: tuple[list[str], Settings],
) -> None:
    urls, settings = two_servers
    schedule = _schedule(urls[0])
    slot = _post_slots([urls[0]], schedule["id"], _every_half_hour(40, 1))[0]
    patients = [
        _post(urls[n % len(urls)], {"resourceType": "Patient", "name": [{"family": f"H{n}"}]})["id"]
        for n in range(REQUESTS)
    ]
    bodies = [
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "appt-resource", "resource": appointment(pid, slot)}],
        }
        for pid in patients
    ]
    responses = asyncio.run(
        _send(urls, "POST", ["/fhir/Appointment/$hold"] * REQUESTS, bodies, "application/fhir+json")
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1 and statuses.count(409) == REQUESTS - 1, statuses
    held = next(r.json()["entry"][0]["resource"] for r in responses if r.status_code == 200)
    assert httpx.get(f"{urls[1]}/fhir/Slot/{slot['id']}").json()["status"] == "busy-tentative"
    assert asyncio.run(_appointments_holding(settings, slot["id"])) == [held["id"]]


def test_concurrent_reschedules_onto_one_slot(two_servers: tuple[list[str], Settings]) -> None:
    urls, settings = two_servers
    schedule = _schedule(urls[0])
    movers = 20
    originals = _post_slots([urls[0]], schedule["id"], _every_half_hour(80, movers))
    target = _post_slots([urls[1]], schedule["id"], _every_half_hour(120, 1))[0]
    booked = []
    for n, slot in enumerate(originals):
        pid = _post(urls[0], {"resourceType": "Patient", "name": [{"family": f"R{n}"}]})["id"]
        booked.append(_post(urls[n % len(urls)], appointment(pid, slot)))
    patch = [{"op": "replace", "path": "/slot", "value": [{"reference": f"Slot/{target['id']}"}]}]
    responses = asyncio.run(
        _send(
            urls,
            "PATCH",
            [f"/fhir/Appointment/{a['id']}" for a in booked],
            [patch] * movers,
            "application/json-patch+json",
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1 and statuses.count(409) == movers - 1, statuses
    winner = booked[statuses.index(200)]
    assert asyncio.run(_appointments_holding(settings, target["id"])) == [winner["id"]]
    for appt, slot in zip(booked, originals, strict=True):
        state = httpx.get(f"{urls[0]}/fhir/Slot/{slot['id']}").json()["status"]
        holders = asyncio.run(_appointments_holding(settings, slot["id"]))
        if appt is winner:
            assert state == "free" and holders == []
        else:
            assert state == "busy" and holders == [appt["id"]]


def _overlap_diagnostics(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(issue.get("diagnostics", "") for issue in body["issue"])


def test_one_patient_racing_for_overlapping_slots_books_one(
    two_servers: tuple[list[str], Settings],
) -> None:
    """Different Slots (no common compare-and-set), one patient, times that all overlap."""
    urls, _ = two_servers
    schedule = _schedule(urls[0])
    base = hours_from_now(140)
    starts = [base + timedelta(minutes=n % 25) for n in range(REQUESTS)]
    slots = _post_slots(urls, schedule["id"], starts)
    pid = _post(urls[0], {"resourceType": "Patient", "name": [{"family": "Racer"}]})["id"]
    responses = asyncio.run(_race(urls, [appointment(pid, slot) for slot in slots]))

    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 and statuses.count(409) == REQUESTS - 1, statuses
    for refused in (r for r in responses if r.status_code == 409):
        assert "overlaps" in _overlap_diagnostics(refused)
    won = statuses.index(201)
    for n, slot in enumerate(slots):
        state = httpx.get(f"{urls[n % 2]}/fhir/Slot/{slot['id']}").json()["status"]
        assert state == ("busy" if n == won else "free")
    found = httpx.get(f"{urls[1]}/fhir/Appointment", params={"patient": pid}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [responses[won].json()["id"]]


def test_one_patient_booking_adjacent_slots_concurrently_gets_all(
    two_servers: tuple[list[str], Settings],
) -> None:
    urls, _ = two_servers
    schedule = _schedule(urls[0])
    slots = _post_slots(
        [urls[1]], schedule["id"], _every_half_hour(170, 12)
    )  # back to back, none overlapping
    pid = _post(urls[0], {"resourceType": "Patient", "name": [{"family": "Busy"}]})["id"]
    responses = asyncio.run(_race(urls, [appointment(pid, slot) for slot in slots]))
    assert [r.status_code for r in responses] == [201] * len(slots)
