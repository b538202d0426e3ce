"""`fhir-server reindex` on the embedded store: rows/s when every row changes, and when none does.

It loads `--count` Patients (default 20,000; each with a phone and an e-mail) as first
versions (`store.bulk_load`), strips their `match-telecom` entries (as a release without the
parameter left them), then times `store.reindex.reindex_type` (what the command runs per type,
in batches of `--batch`): a first pass rewrites every row, a second finds nothing to rewrite
(the cost of reading and indexing alone). Printed with the load average: compare within a run
on a shared machine. Nothing here asserts on time.

Run: python -m benchmarks.bench_reindex [--count 20000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.bench_core import embedded_store
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.store.bulk_load import insert_first_versions
from fhir_server.store.clock import to_instant
from fhir_server.store.database import connect
from fhir_server.store.reindex import reindex_type
from fhir_server.store.resources import ResourceStore

BASE = "http://bench/fhir"


def _patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n:07d}",
        "name": [{"family": f"Family{n % 997}", "given": [f"Given{n % 101}"]}],
        "gender": ("female", "male")[n % 2],
        "birthDate": f"{1940 + n % 80}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        "telecom": [
            {"system": "phone", "value": f"+44 20 {7000 + n % 3000} {n % 10000:04d}"},
            {"system": "email", "value": f"Person{n}@Example.org"},
        ],
        "address": [{"city": "London", "postalCode": f"SW{n % 20} 1AA"}],
    }


async def _run(uri: str, count: int, batch: int) -> None:
    database = await connect(uri, "bench_reindex")
    try:
        store = ResourceStore(database, indexer=ResourceIndexer(BASE))
        at = to_instant(datetime.now(UTC))
        started = time.monotonic()
        await insert_first_versions(store, [(_patient(n), at) for n in range(count)])
        unset = {"$unset": {"idx.m.match-telecom": "", "idx.o.match-telecom": ""}}
        await store.collection("Patient").update_many({}, unset)
        print(f"  loaded {count:,} Patients in {time.monotonic() - started:.0f} s")
        for label in ("every row stale", "nothing stale"):
            started = time.monotonic()
            result = await reindex_type(store, "Patient", batch=batch)
            seconds = time.monotonic() - started
            print(
                f"  {label}: {result.done:,} rows, {result.changed:,} changed in {seconds:.1f} s "
                f"= {result.done / seconds:,.0f} rows/s (load average {os.getloadavg()[0]:.1f})"
            )
    finally:
        await database.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000, help="Patients stored")
    parser.add_argument("--batch", type=int, default=1000, help="rows per batch")
    args = parser.parse_args(argv)
    print(f"bench_reindex: {args.count:,} Patients, batches of {args.batch}")
    with embedded_store("bench-reindex-") as (server, _data_dir):
        asyncio.run(_run(server.uri, args.count, args.batch))


if __name__ == "__main__":
    main()
