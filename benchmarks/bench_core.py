"""REST core throughput and latency against its ceilings, and memory with 100,000 Patients.

One run, on this machine, at concurrency 32 over HTTP/1.1 keep-alive:
- B0: a bare route returning the same ~1 KB Patient JSON from memory (orjson);
- B1: B0 plus one `find_one` by `_id` on the same store;
- FHIR read (GET Patient/id), create (POST Patient) and update (PUT Patient/id).
Targets (issue 2): read >= 0.8 x B1, create >= 0.15 x read. Then 100,000
Patients are written straight into the store and the server's resident memory
is measured after a round of reads over them.

The server runs as a subprocess (`benchmarks.serve_app`, SMART enforcement off)
on the embedded store in a temporary directory. Besides throughput, the CPU
each process spends per request is printed: on a shared 2-core machine it is
the steadier figure. Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from benchmarks import http_load
from fhir_server.store import embedded
from fhir_server.store.clock import now_instant
from fhir_server.store.database import Database, connect
from fhir_server.store.resources import ResourceStore, Version, body_of, first_row, history_row

CONCURRENCY = 32
SECONDS = 3.0
ROUNDS = 3
"""Scenarios run interleaved, ROUNDS times each; the median round is reported, so a
burst of other work on the shared machine skews one round rather than one scenario."""
SEED_PATIENTS = 1000
STORED_PATIENTS = 100_000
DATABASE = "bench"
FHIR = "application/fhir+json"


def bench_patient(n: int) -> dict[str, Any]:
    """A realistic Patient of about 1 KB once the server has stamped id and meta."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {"use": "usual", "system": "http://clinic.example.org/mrn", "value": f"MRN{n:08d}"},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": f"999-00-{n % 10000:04d}"},
        ],
        "active": True,
        "name": [
            {"use": "official", "family": f"Family{n}", "given": ["Alexandra", "Jo"]},
            {"use": "nickname", "given": ["Alex"]},
        ],
        "telecom": [
            {"system": "phone", "value": "+1-212-555-0199", "use": "mobile", "rank": 1},
            {"system": "email", "value": f"patient{n}@example.org", "use": "home"},
        ],
        "gender": "female",
        "birthDate": "1984-07-14",
        "address": [
            {
                "use": "home",
                "line": ["1 Example Street", "Apartment 4B"],
                "city": "New York",
                "state": "NY",
                "postalCode": "10024",
                "country": "US",
            }
        ],
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": "M",
                    "display": "Married",
                }
            ]
        },
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]},
                "preferred": True,
            }
        ],
        "managingOrganization": {"reference": "Organization/demo-clinic"},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(*pids: int) -> http_load.CpuProbe:
    """User + system CPU seconds of each process so far (from /proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")

    def probe() -> tuple[float, ...]:
        used = []
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            used.append((int(fields[11]) + int(fields[12])) / tick)
        return tuple(used)

    return probe


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _seed(store: ResourceStore) -> list[dict[str, Any]]:
    """SEED_PATIENTS Patients written through the store, as the API would write them."""
    stored: list[dict[str, Any]] = []
    for start in range(0, SEED_PATIENTS, 100):
        versions = await asyncio.gather(
            *(store.create(bench_patient(n)) for n in range(start, start + 100))
        )
        stored += [v.resource for v in versions if v.resource is not None]
    return stored


async def _bulk_load(store: ResourceStore, count: int) -> list[str]:
    """Write `count` Patients fast: current and history rows inserted in batches.

    The rows come from the store's own row builders, so their stored shape is
    exactly that of the API's writes without going through HTTP or one unit of
    work per resource.
    """
    updated = now_instant()
    ids: list[str] = []
    batch = 5000
    for start in range(0, count, batch):
        rows, versions = [], []
        for n in range(start, min(start + batch, count)):
            rid = f"bulk-{n:06d}"
            row = first_row({**bench_patient(SEED_PATIENTS + n), "id": rid}, store.indexer, updated)
            rows.append(row)
            versions.append(
                history_row(Version("Patient", rid, 1, updated, False, body_of(row), "POST"))
            )
            ids.append(rid)
        await store.collection("Patient").insert_many(rows, ordered=False)
        await store.history.insert_many(versions, ordered=False)
        if sys.stdout.isatty():
            print(f"\r  stored {len(ids):,}/{count:,} Patients", end="", flush=True)
    print(f"\r  stored {len(ids):,}/{count:,} Patients")
    return ids


@contextmanager
def embedded_store(prefix: str) -> Iterator[tuple[embedded.EmbeddedServer, Path]]:
    """An embedded store in a temporary directory, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data_dir = Path(tmp)
        store_server = embedded.start(data_dir)
        try:
            yield store_server, data_dir
        finally:
            embedded.stop(store_server, data_dir)


@contextmanager
def _server(uri: str, payload: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.serve_app",
            "--uri",
            uri,
            "--database",
            DATABASE,
            "--port",
            str(port),
            "--payload",
            str(payload),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.1)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=15)


async def _load_tests(port: int, ids: list[str], cpu: http_load.CpuProbe) -> http_load.Measured:
    reads = http_load.cycle([http_load.request("GET", f"/fhir/Patient/{rid}") for rid in ids])
    b0 = http_load.cycle([http_load.request("GET", f"/bench/b0/{rid}") for rid in ids])
    b1 = http_load.cycle([http_load.request("GET", f"/bench/b1/{rid}") for rid in ids])
    post = http_load.request("POST", "/fhir/Patient", orjson.dumps(bench_patient(0)), FHIR)
    puts = [
        http_load.request(
            "PUT",
            f"/fhir/Patient/{rid}",
            orjson.dumps({**bench_patient(n), "id": rid, "active": n % 2 == 0}),
            FHIR,
        )
        for n, rid in enumerate(ids[:CONCURRENCY])
    ]
    plan: http_load.Plan = [
        ("B0", b0, 200),
        ("B1", b1, 200),
        ("read", reads, 200),
        ("create", lambda _c, _n: post, 201),
        ("update", lambda c, _n: puts[c], 200),
    ]
    rounds = await http_load.interleaved(
        port, plan, rounds=ROUNDS, seconds=SECONDS, concurrency=CONCURRENCY, cpu=cpu
    )
    return http_load.medians(rounds)


def _ratios(measured: http_load.Measured) -> None:
    """Measured throughput ratios, and the same ratios from CPU cost per request.

    The machine's cores are shared by server, store, load generator (and
    whatever else runs), so throughput is CPU-bound and noisy; the inverse
    ratio of total CPU per request is the steadier estimate of the same figure.
    """
    rate = {name: result.rate for name, (result, _) in measured.items()}
    cost = {name: sum(ms) for name, (_, ms) in measured.items()}
    print("Ratios                measured   from CPU cost   target")
    for (top, bottom), target in {
        ("read", "B1"): 0.8,
        ("read", "B0"): None,
        ("create", "read"): 0.15,
    }.items():
        by_rate, by_cost = rate[top] / rate[bottom], cost[bottom] / cost[top]
        goal = (
            ""
            if target is None
            else f">= {target:.2f}: " + ("met" if by_rate >= target else "NOT met")
        )
        print(f"  {top + '/' + bottom:<14} {by_rate:10.2f} {by_cost:15.2f}   {goal}")


async def _open(uri: str) -> tuple[Database, ResourceStore]:
    database = await connect(uri, DATABASE)
    store = ResourceStore(database)
    await store.ensure_indexes()
    return database, store


def main() -> None:
    print(
        f"bench_core: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"concurrency {CONCURRENCY}, median of {ROUNDS} interleaved {SECONDS:.0f} s rounds"
    )
    with embedded_store("fhir-bench-") as (store_server, data_dir):
        _run(store_server, data_dir)


def _run(store_server: embedded.EmbeddedServer, data_dir: Path) -> None:
    loop = asyncio.new_event_loop()
    try:
        database, store = loop.run_until_complete(_open(store_server.uri))
        seeded = loop.run_until_complete(_seed(store))
        payload = data_dir / "payload.json"
        payload.write_bytes(orjson.dumps(seeded[0]))
        print(f"Patient JSON served: {len(payload.read_bytes())} bytes")
        ids = [r["id"] for r in seeded]
        with _server(store_server.uri, payload) as (port, process):
            cpu = _cpu_seconds(process.pid, store_server.pid, os.getpid())
            print("Throughput, latency and CPU cost at concurrency 32:")
            _ratios(loop.run_until_complete(_load_tests(port, ids, cpu)))
            before = _rss_mib(process.pid)
            print(f"Memory with {STORED_PATIENTS:,} Patients stored:")
            bulk = loop.run_until_complete(_bulk_load(store, STORED_PATIENTS))
            reads = http_load.cycle(
                [http_load.request("GET", f"/fhir/Patient/{rid}") for rid in bulk]
            )
            spread = loop.run_until_complete(
                http_load.run("read", "127.0.0.1", port, reads, seconds=3.0)
            )
            print(f"  {spread.line()}  (over the {STORED_PATIENTS:,})")
            print(
                f"  server RSS {before:.0f} MiB after the load tests, "
                f"{_rss_mib(process.pid):.0f} MiB with {STORED_PATIENTS:,} stored and after reads; "
                f"embedded store RSS {_rss_mib(store_server.pid):.0f} MiB"
            )
        loop.run_until_complete(database.close())
    finally:
        loop.close()


if __name__ == "__main__":
    main()
