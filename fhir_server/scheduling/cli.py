"""`fhir-server slots ...`: the rolling slot-generation job as a command.

The main CLI adds this sub-app with `app.add_typer(slots_app, name="slots")`.
Celery beat runs the same job hourly (`notifications.tasks`); this command
runs it once, by hand or from cron where no beat runs: it releases expired
holds and keeps every active Schedule's free Slots generated up to its
horizon; reruns create nothing new.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from fhir_server.cli_support import load_settings, store_errors
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.scheduling.generation import GenerationReport, generate_rolling
from fhir_server.settings import Settings
from fhir_server.store.connection import open_database
from fhir_server.store.resources import ResourceStore

__all__ = ["generate_rolling", "slots_app"]

slots_app = typer.Typer(
    name="slots", help="Slot generation for the Schedules.", no_args_is_help=True
)


@slots_app.callback()
def slots() -> None:
    """Slot generation for the Schedules (a command group even with one command)."""


async def _rolling(settings: Settings, horizon_days: int) -> dict[str, GenerationReport]:
    async with open_database(settings) as database:
        store = ResourceStore(database, indexer=ResourceIndexer(settings.base_url))
        return await generate_rolling(store, datetime.now(UTC), horizon_days)


@slots_app.command("generate")
def generate_command(
    horizon_days: Annotated[
        int, typer.Option(min=1, max=400, help="Days ahead to keep Slots generated.")
    ] = 28,
) -> None:
    """Generate free Slots for every active Schedule from now to the horizon."""
    with store_errors():
        reports = asyncio.run(_rolling(load_settings(), horizon_days))
    for schedule_id, report in reports.items():
        typer.echo(
            f"Schedule/{schedule_id}: {report.created} created, {report.kept} kept, "
            f"{report.removed} removed, {report.repaired} repaired, "
            f"{len(report.flagged)} appointments flagged"
        )
    typer.echo(f"{len(reports)} schedules processed.")
