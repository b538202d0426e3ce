"""`fhir-server reindex [--type T ...] [--batch N]`: index stored resources again.

After an upgrade that adds or changes search parameters, resources stored
before are not found by them until their `idx` is recomputed
(`store.reindex`). Safe beside a running server: a resource written meanwhile
keeps the index of its own write. The server's start-up warns until this ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated

import typer

from fhir_server.cli_support import load_settings, store_errors
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.settings import Settings
from fhir_server.store import reindex as reindexing
from fhir_server.store.connection import open_database
from fhir_server.store.reindex import INDEXED_TYPES, TypeProgress
from fhir_server.store.resources import ResourceStore


def _chosen(types: list[str] | None) -> list[str]:
    """The types asked for, in the server's order; a usage error names the valid ones."""
    unknown = [t for t in types or () if t not in INDEXED_TYPES]
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}: not a stored type. Valid types: {', '.join(INDEXED_TYPES)}.",
            param_hint="--type",
        )
    return [t for t in INDEXED_TYPES if not types or t in types]


def _rate(rows: int, since: float) -> str:
    return f"{rows / max(time.monotonic() - since, 1e-6):,.0f} rows/s"


def _line(progress: TypeProgress, since: float) -> str:
    return (
        f"{progress.resource_type}: {progress.done}/{progress.total} rows, "
        f"{progress.changed} changed, {progress.skipped} skipped, {_rate(progress.done, since)}"
    )


def _echo_progress(started: float) -> Callable[[TypeProgress], None]:
    """Print each batch's counts to stderr (stdout keeps the per-type results)."""
    return lambda progress: typer.echo(_line(progress, started), err=True)


async def _reindex(settings: Settings, types: list[str], batch: int) -> list[TypeProgress]:
    async with open_database(settings) as database:
        store = ResourceStore(database, indexer=ResourceIndexer(settings.base_url))
        done = []
        for rtype in types:
            started = time.monotonic()
            result = await reindexing.reindex_type(
                store,
                rtype,
                batch=batch,
                report=_echo_progress(started),
            )
            typer.echo(_line(result, started))
            done.append(result)
        await reindexing.record(store, types)
        return done


def reindex(
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only this resource type (repeatable); default: all."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Rows read and written at a time.")] = 1000,
) -> None:
    """Recompute the search index of stored resources (after an upgrade changed search
    parameters); safe while the server runs."""
    chosen = _chosen(types)
    settings = load_settings()
    started = time.monotonic()
    with store_errors():
        results = asyncio.run(_reindex(settings, chosen, batch))
    rows = sum(r.done for r in results)
    changed = sum(r.changed for r in results)
    skipped = sum(r.skipped for r in results)
    kinds = f"{len(results)} type{'s' * (len(results) != 1)}"
    typer.echo(
        f"Reindexed {rows} rows of {kinds} in {time.monotonic() - started:.1f} s "
        f"({_rate(rows, started)}): {changed} changed, {skipped} skipped "
        "(written meanwhile: indexed by their own write). The server's start-up check now "
        "knows these types are indexed with this release's search parameters."
    )
