"""`$bulk-publish`: how long a slot finder's full poll takes to build (issue 18).

A full poll is the manifest and its three NDJSON files (Location, Schedule,
Slot), each built on request through the access gate as the public caller.
Measured in-process (the app under `TestClient`, the embedded store in a
temporary directory, SMART enforcement on, so the gate's work is counted)
for the demo clinic (its four weeks of generated Slots), then again after
`--slots` more future Slots are written straight into the store (with the
server's own indexer) on the demo's public Schedules. Then one `_since` poll
after a single new Slot. Nothing here asserts on time.

Run: python -m benchmarks.bench_publish [--slots 50000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from benchmarks.bench_core import embedded_store
from fhir_server.app import create_app
from fhir_server.demo.full import prepare_demo
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.notifications import celery_app
from fhir_server.settings import Settings
from fhir_server.store.clock import to_instant
from fhir_server.store.resources import ResourceStore, first_row

BATCH = 5000


def _poll(client: TestClient, since: str | None = None) -> tuple[float, float, dict[str, int], str]:
    """Seconds for the manifest and every file (wall, and this process's CPU: the rest is the
    embedded store's process), the lines per type, the transactionTime."""
    began, cpu = time.perf_counter(), time.process_time()
    manifest = client.get("/fhir/$bulk-publish", params={"_since": since} if since else {})
    manifest.raise_for_status()
    lines: dict[str, int] = {}
    for output in manifest.json()["output"]:
        fetched = client.get(output["url"])
        fetched.raise_for_status()
        lines[output["type"]] = fetched.text.count("\n")
    took = time.perf_counter() - began
    return took, time.process_time() - cpu, lines, str(manifest.json()["transactionTime"])


async def _seed(
    store: ResourceStore, indexer: ResourceIndexer, count: int, prefix: str = "bench-slot"
) -> None:
    """`count` free future Slots over the stored (demo, public) Schedules."""
    schedules = [doc["_id"] async for doc in store.collection("Schedule").find({}, {"_id": 1})]
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    updated = to_instant(datetime.now(UTC))
    for start in range(0, count, BATCH):
        rows = []
        for n in range(start, min(start + BATCH, count)):
            step, schedule = divmod(n, len(schedules))
            begins = first + timedelta(minutes=15 * step)
            slot = {
                "resourceType": "Slot",
                "id": f"{prefix}-{n:07d}",
                "schedule": {"reference": f"Schedule/{schedules[schedule]}"},
                "status": "free",
                "start": to_instant(begins),
                "end": to_instant(begins + timedelta(minutes=15)),
            }
            rows.append(first_row(slot, indexer, updated))
        await store.collection("Slot").insert_many(rows, ordered=False)


def _report(label: str, measured: tuple[float, float, dict[str, int], str]) -> None:
    seconds, cpu, lines, _ = measured
    counts = ", ".join(f"{n:,} {t}" for t, n in lines.items())
    print(f"  {label}: {seconds:.2f} s wall, {cpu:.2f} s CPU in the API process ({counts})")


def _run(uri: str, data_dir: Path, redis_url: str, slots: int) -> None:
    settings = Settings(
        mongodb_uri=uri,
        database="bench_publish",
        data_dir=data_dir,
        redis_url=redis_url,
        public_base_url="http://bench.test/fhir",
        rate_limit_address_per_minute=0,
        log_level="WARNING",
    )
    with TestClient(create_app(settings)) as client:
        services: Any = client.app.state.services  # type: ignore[attr-defined]
        assert client.portal is not None
        client.portal.call(prepare_demo, services.store, None, settings, datetime.now(UTC))
        print("bench_publish: a full $bulk-publish poll (manifest and three NDJSON files)")
        _report("demo clinic", _poll(client))
        indexer = ResourceIndexer(settings.base_url)
        client.portal.call(_seed, services.store, indexer, slots)
        full = _poll(client)
        _report(f"demo clinic + {slots:,} Slots", full)
        time.sleep(3.5)  # past the manifest's settle margin, so the poll sees one change
        since = _poll(client)[3]
        client.portal.call(_seed, services.store, indexer, 1, "bench-new")
        _report("_since poll after one change", _poll(client, since))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--slots", type=int, default=50_000, help="Slots added to the demo's.")
    args = parser.parse_args(argv)
    with embedded_store("bench-publish-") as (server, data_dir):
        redis_dir = data_dir / "redis"
        redis_dir.mkdir()
        try:
            _run(server.uri, data_dir, celery_app.embedded_redis_url(redis_dir), args.slots)
        finally:
            celery_app.stop_embedded(redis_dir)


if __name__ == "__main__":
    main()
