"""Bulk export throughput and the worker's memory, with a real worker, Redis and store.

Stores COUNT Patients (first versions: 5,000 through the store, the rest
written straight into the embedded store's SQLite file, the search index
computed for the first 5,000 only: setup speed),
then runs the bulk client flow against the app with SMART enforcement on
(a system/*.rs backend token): kick-off, poll until the manifest, download
the file. Prints resources/s of the export (kick-off to manifest) and of the
download, the worker's resident memory before the job and at its peak, and
the embedded store's peak (sampled every 0.2 s).

Run: `.venv/bin/python -m benchmarks.bench_export [--count N]` (default 1,000,000;
`make bench` runs it only with `--export`, as it takes minutes).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications import celery_app
from fhir_server.settings import Settings
from fhir_server.store import embedded
from fhir_server.store.resources import current_row, first_row, stamped
from tests.integration.auth_helpers import bearer, call, mint
from tests.integration.bulk_support import ASYNC
from tests.integration.notify_support import Worker, short_tmp, start_redis

COUNT = 1_000_000
BATCH = 5000
LOAD_BATCH = 50_000
BASE = "http://testserver/fhir"


def _count() -> int:
    args = sys.argv[1:]
    return int(args[args.index("--count") + 1]) if "--count" in args else COUNT


def _patient(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"bench-{i:07d}",
        "name": [{"family": f"Family{i % 997}", "given": ["Alex"]}],
        "gender": "female" if i % 2 else "male",
        "birthDate": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}",
        "telecom": [{"system": "email", "value": f"p{i}@example.org"}],
    }


def _insert(client: TestClient, count: int, db_file: Path) -> float:
    """Store `count` Patients: the first BATCH through the store (which makes the collection
    and its indexes), the rest as the same rows written straight into the embedded store's
    SQLite file (setup speed, not under test: through the wire the store takes about 2 ms a
    row, half an hour for a million). Rows past the first BATCH reuse the search index of the
    row BATCH before them (the export reads rows, not their index)."""
    store = client.app.state.services.store  # type: ignore[attr-defined]
    updated = "2024-01-01T00:00:00.000000Z"
    began = time.perf_counter()
    first = [first_row(_patient(i), store.indexer, updated) for i in range(min(count, BATCH))]
    call(client, store.collection("Patient").insert_many, first)
    templates = [row["idx"] for row in first]
    with sqlite3.connect(db_file, timeout=60) as sql:
        for start in range(BATCH, count, LOAD_BATCH):
            rows = []
            for i in range(start, min(count, start + LOAD_BATCH)):
                patient = stamped(_patient(i), f"bench-{i:07d}", 1, updated)
                text = orjson.dumps(patient).decode()
                row = current_row(patient["id"], text, 1, updated, templates[i % BATCH])
                rows.append((orjson.dumps(row).decode(), row["_id"]))
            sql.executemany('INSERT INTO "Patient"(data, _id) VALUES (?, ?)', rows)
            sql.commit()
    return time.perf_counter() - began


class PeakRss:
    """The largest resident set of a process, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def now(self) -> int:
        return int(self.process.memory_info().rss)

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.2)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def _export(client: TestClient, headers: dict[str, str], rtype: str) -> dict[str, Any]:
    """Kick off, poll every 0.5 s; the manifest."""
    kick = client.get(f"{BASE}/$export?_type={rtype}", headers=headers | ASYNC)
    assert kick.status_code == 202, kick.text
    url = kick.headers["content-location"]
    while (status := client.get(url, headers=headers)).status_code == 202:
        time.sleep(0.5)
    assert status.status_code == 200, status.text
    manifest: dict[str, Any] = status.json()
    return manifest


def _run(client: TestClient, worker: Worker, store_pid: int, count: int) -> None:
    headers = bearer(mint(client, "system/*.rs", client_id="bench-ehr"))
    assert worker.process is not None
    rss, store = PeakRss(worker.process.pid), PeakRss(store_pid)
    # A warm-up export of nothing: the worker has loaded its code and opened the store.
    _export(client, headers, "Practitioner")
    before, store_before = rss.now(), store.now()
    with rss, store:
        began = time.perf_counter()
        manifest = _export(client, headers, "Patient")
        exported = time.perf_counter() - began
    (output,) = manifest["output"]
    assert output["count"] == count, output
    began = time.perf_counter()
    size = 0
    with client.stream("GET", output["url"], headers=headers) as response:
        for chunk in response.iter_bytes():
            size += len(chunk)
    downloaded = time.perf_counter() - began
    mib = 1024 * 1024
    print(f"  export: {count} Patients in {exported:.1f} s = {count / exported:,.0f} resources/s")
    print(f"  worker RSS: {before / mib:.0f} MiB before, peak {rss.peak / mib:.0f} MiB during")
    print(
        f"  embedded store RSS: {store_before / mib:.0f} MiB before, "
        f"peak {store.peak / mib:.0f} MiB during"
    )
    rate = count / downloaded
    print(f"  download: {size / mib:.0f} MiB in {downloaded:.1f} s = {rate:,.0f} resources/s")


def main() -> None:
    count = _count()
    print(f"bench_export ({count:,} resources)")
    with tempfile.TemporaryDirectory(prefix="bench-export") as tmp:
        server = embedded.start(Path(tmp))
        folder = short_tmp()
        redis, url = start_redis(folder)
        settings = Settings(
            mongodb_uri=server.uri, database="bench", data_dir=Path(tmp) / "data",
            redis_url=url, public_base_url=BASE, auth_enabled=True, log_level="WARNING",
            rate_limit_address_per_minute=0, rate_limit_token_per_minute=0,
        )  # fmt: skip
        worker = Worker(settings, folder)
        try:
            with TestClient(create_app(settings)) as client:
                loaded = _insert(client, count, Path(tmp) / "db" / f"{settings.database}.db")
                print(f"  setup: {count} Patients stored in {loaded:.1f} s")
                worker.start()
                _run(client, worker, server.pid, count)
        finally:
            worker.stop()
            celery_app.shut_down_redis(redis)
            embedded.stop(server, Path(tmp))


if __name__ == "__main__":
    main()
