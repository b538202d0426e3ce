"""Booking throughput against its floor, and the no-double-booking guarantee under contention.

Against the real app over HTTP, one embedded store, in one run:
- plain create: `POST Appointment` without Slots (32 clients), the rate bookings
  are compared with (target: bookings >= 100/s and >= 0.5 x plain create);
- the booking's floor: the six store commands a booking issues, sent bare through
  PyMongo by a route of the benchmark server (`floors.BookingFloor`); target:
  bookings >= 0.7 x the floor (what our code adds to the store's work);
- bookings: `POST Appointment` each claiming its own free Slot (32 clients,
  every request a distinct Slot and Patient), through the booking engine;
  the three alternate over several rounds (create, book, floor, create, ...) so drift
  on the shared machine falls on both alike, and the median of the rounds'
  ratios is reported with the ratio of their CPU costs per request (server,
  store and load generator share the cores: the steadier estimate);
- contention: 100 clients at once over 10 free Slots, several rounds; the
  successes must be exactly 10 every round, and afterwards every busy Slot has
  exactly one Appointment;
- `$find` for a one-week window over 50 Schedules with `--find-slots` Slots
  stored (default 100,000; the issue's figure is for 1,000,000), p50/p99.
Figures are printed; nothing asserts on time.

Run: python -m benchmarks.bench_booking [--seconds 5] [--find-slots 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks import http_load
from benchmarks.bench_core import DATABASE, _cpu_seconds, _server, embedded_store
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.instants import fhir_instant
from fhir_server.scheduling import extensions as ext
from fhir_server.settings import Settings
from fhir_server.store.clock import now_instant
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore, first_row
from fhir_server.store.slots import appointments_on_slot

CLIENTS = 32
SLOTS_PER_CLIENT = 600
RATE_ROUNDS = 5
FLOOR_SLOTS = 50
FIGHTERS = 100
CONTESTED = 10
ROUNDS = 5
FIND_SCHEDULES = 50
SLOTS_PER_DAY = 20  # 08:00-17:30 every 30 minutes
JSON = "application/fhir+json"


def _slot(slot_id: str, schedule_id: str, start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "id": slot_id,
        "meta": {"versionId": "1", "lastUpdated": now_instant()},
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": "free",
        "start": fhir_instant(start),
        "end": fhir_instant(start + timedelta(minutes=30)),
    }


async def _insert_slots(store: ResourceStore, slots: list[dict[str, Any]]) -> None:
    """Current rows straight into the collection (the booking path reads only these)."""
    indexer = ResourceIndexer(Settings().base_url)
    rows = [first_row(s, indexer, s["meta"]["lastUpdated"]) for s in slots]
    for n in range(0, len(rows), 1000):
        await store.collection("Slot").insert_many(rows[n : n + 1000])


async def _seed(store: ResourceStore) -> tuple[list[str], datetime]:
    location = await store.create({"resourceType": "Location", "name": "Bench clinic"})
    schedule = {
        "resourceType": "Schedule",
        "active": True,
        "actor": [{"reference": f"Location/{location.id}"}],
        "extension": [{"url": ext.MAXIMUM_DAYS_AHEAD, "valuePositiveInt": 365}],
    }
    schedules = [(await store.create(schedule)).id for _ in range(CLIENTS + ROUNDS)]
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    slots = [
        _slot(f"b{c}-{n}", schedules[c], base + timedelta(minutes=30 * n))
        for c in range(CLIENTS)
        for n in range(SLOTS_PER_CLIENT)
    ]
    slots += [
        _slot(f"f{r}-{n}", schedules[CLIENTS + r], base + timedelta(minutes=30 * n))
        for r in range(ROUNDS)
        for n in range(CONTESTED)
    ]
    slots += [
        _slot(f"fl{c}-{n}", schedules[c], base - timedelta(minutes=30 * (n + 1)))
        for c in range(CLIENTS)
        for n in range(FLOOR_SLOTS)
    ]
    await _insert_slots(store, slots)
    return schedules, base


def _appointment(slot: dict[str, Any] | None, patient: str) -> bytes:
    body: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "booked" if slot else "proposed",
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}],
    }
    if slot:
        body |= {"start": slot["start"], "end": slot["end"], "slot": [{"reference": slot["ref"]}]}
    return orjson.dumps(body)


def _booking_requests(base: datetime) -> http_load.RequestFactory:
    """Each client books its own Slots in turn, on from where its previous round stopped."""
    booked = [0] * CLIENTS

    def make(client: int, _number: int) -> bytes:
        number = booked[client]
        booked[client] += 1
        start = base + timedelta(minutes=30 * number)
        slot = {
            "ref": f"Slot/b{client}-{number}",
            "start": fhir_instant(start),
            "end": fhir_instant(start + timedelta(minutes=30)),
        }
        body = _appointment(slot, f"p{client}-{number}")
        return http_load.request("POST", "/fhir/Appointment", body, JSON)

    return make


def _floor_requests() -> http_load.RequestFactory:
    """The booking's store commands, bare (`floors.BookingFloor`): each request a new Patient
    and Appointment; the Slots are reused (the floor's compare-and-set does not look at them)."""
    sent = [0] * CLIENTS

    def make(client: int, _number: int) -> bytes:
        number = sent[client]
        sent[client] += 1
        path = f"/bench/floor/book/fl{client}-{number % FLOOR_SLOTS}/floor{client}-{number}"
        return http_load.request("POST", path)

    return make


def _plain_requests(client: int, number: int) -> bytes:
    body = _appointment(None, f"c{client}-{number}")
    return http_load.request("POST", "/fhir/Appointment", body, JSON)


async def _rates(port: int, base: datetime, seconds: float, cpu: http_load.CpuProbe) -> None:
    """Plain creates, bookings and their floor in alternating rounds; per kind the median
    round, and the median of the rounds' booking/create and booking/floor ratios next to the
    ratio of pooled CPU costs."""
    plan = (
        ("create", _plain_requests),
        ("book", _booking_requests(base)),
        ("floor", _floor_requests()),
    )
    rounds: dict[str, list[http_load.Result]] = {name: [] for name, _ in plan}
    for _ in range(RATE_ROUNDS):
        for name, make in plan:
            rounds[name].append(
                await http_load.run(
                    name, "127.0.0.1", port, make, seconds=seconds, expect=201, cpu=cpu
                )
            )
    # A round in which nothing completed (a machine loaded by other work) has no ratio.
    ratios = {
        against: sorted(
            b.rate / c.rate
            for c, b in zip(rounds[against], rounds["book"], strict=True)
            if c.rate > 0
        )
        or [0.0]
        for against in ("create", "floor")
    }
    costs = {name: http_load.cpu_ms_per_request(runs) for name, runs in rounds.items()}
    for name, runs in rounds.items():
        runs.sort(key=lambda r: r.rate)
        print(f"  {runs[len(runs) // 2].line()}  (rounds {runs[0].rate:.0f}-{runs[-1].rate:.0f})")
        server, store, generator = costs[name]
        print(
            f"    cpu ms/request: server {server:.2f}, store {store:.2f}, "
            f"load generator {generator:.2f}"
        )
    for against, label, target in (("create", "plain create", 0.5), ("floor", "its floor", 0.7)):
        by_cost = sum(costs[against]) / sum(costs["book"])
        found = ratios[against]
        median = found[len(found) // 2]
        print(
            f"  bookings/s vs {label}: {median:.2f} (median of rounds {found[0]:.2f}-"
            f"{found[-1]:.2f}); from CPU cost per request: {by_cost:.2f}; target >= {target}: "
            + ("met" if median >= target else "NOT met")
        )


async def _fight(port: int, base: datetime, round_: int) -> tuple[int, int]:
    """(successes, 409s) of FIGHTERS clients booking CONTESTED Slots at once."""

    def body(n: int) -> bytes:
        start = base + timedelta(minutes=30 * (n % CONTESTED))
        slot = {
            "ref": f"Slot/f{round_}-{n % CONTESTED}",
            "start": fhir_instant(start),
            "end": fhir_instant(start + timedelta(minutes=30)),
        }
        return _appointment(slot, f"fight{round_}-{n}")

    limits = httpx.Limits(max_connections=FIGHTERS)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    "/fhir/Appointment",
                    content=body(n),
                    headers={"content-type": JSON},
                    timeout=120,
                )
                for n in range(FIGHTERS)
            )
        )
    codes = [r.status_code for r in responses]
    return codes.count(201), codes.count(409)


async def _consistent(store: ResourceStore, round_: int) -> str:
    """Each contested Slot busy with exactly one Appointment (or free with none)."""
    problems = 0
    for n in range(CONTESTED):
        slot = await store.current("Slot", f"f{round_}-{n}")
        holders = await appointments_on_slot(store, f"Slot/f{round_}-{n}")
        busy = slot is not None and (slot.resource or {}).get("status") == "busy"
        if len(holders) != (1 if busy else 0):
            problems += 1
    return "consistent" if problems == 0 else f"{problems} INCONSISTENT Slots"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--find-slots", type=int, default=100_000)
    args = parser.parse_args()
    print(
        f"bench_booking: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{CLIENTS} clients, {args.seconds:.0f} s per measurement"
    )
    with embedded_store("fhir-bench-booking-") as (store_server, data_dir):
        asyncio.run(
            _run(store_server.uri, store_server.pid, data_dir, args.seconds, args.find_slots)
        )


async def _seed_find(store: ResourceStore, total: int) -> datetime:
    """FIND_SCHEDULES Schedules sharing `total` Slots, a third of them busy."""
    location = await store.create({"resourceType": "Location", "name": "Find clinic"})
    schedule = {
        "resourceType": "Schedule",
        "active": True,
        "actor": [{"reference": f"Location/{location.id}"}],
        "extension": [{"url": ext.MAXIMUM_DAYS_AHEAD, "valuePositiveInt": 3650}],
    }
    first_day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    first_day += timedelta(days=1)
    per_schedule = total // FIND_SCHEDULES
    for _ in range(FIND_SCHEDULES):
        sid = (await store.create(schedule)).id
        batch = []
        for n in range(per_schedule):
            day, k = divmod(n, SLOTS_PER_DAY)
            slot = _slot(f"{sid}-{n}", sid, first_day + timedelta(days=day, minutes=30 * k))
            slot["status"] = "busy" if n % 3 == 0 else "free"
            batch.append(slot)
        await _insert_slots(store, batch)
    return first_day


def _find_requests(first_day: datetime, days: int) -> http_load.RequestFactory:
    def make(client: int, number: int) -> bytes:
        offset = (client * 7 + number * 3) % max(days - 7, 1)
        start = first_day + timedelta(days=offset)
        query = f"start={fhir_instant(start)}&end={fhir_instant(start + timedelta(days=7))}"
        return http_load.request("GET", f"/fhir/Appointment/$find?{query}")

    return make


async def _run(uri: str, store_pid: int, data_dir: Path, seconds: float, find_slots: int) -> None:
    database = await connect(uri, DATABASE)
    store = ResourceStore(database)
    _, base = await _seed(store)
    payload = data_dir / "payload.json"
    payload.write_bytes(b"{}")
    with _server(uri, payload) as (port, process):
        cpu = _cpu_seconds(process.pid, store_pid, os.getpid())
        print(f"Throughput, latency, CPU per request ({RATE_ROUNDS} alternating rounds):")
        await _rates(port, base, seconds, cpu)
        print(f"Contention: {FIGHTERS} clients at once over {CONTESTED} free Slots:")
        for round_ in range(ROUNDS):
            won, refused = await _fight(port, base, round_)
            state = await _consistent(store, round_)
            print(f"  round {round_ + 1}: {won} booked, {refused} refused (409); {state}")
        print(f"$find, one-week window, {FIND_SCHEDULES} Schedules, {find_slots:,} Slots stored:")
        first_day = await _seed_find(store, find_slots)
        days = find_slots // FIND_SCHEDULES // SLOTS_PER_DAY
        found = await http_load.run(
            "$find",
            "127.0.0.1",
            port,
            _find_requests(first_day, days),
            concurrency=2,
            seconds=seconds,
            cpu=cpu,
        )
        print(" ", found.line())
    await database.close()


if __name__ == "__main__":
    main()
