"""`fhir-server report METRIC --from --to [--by ...] [--format csv|json]`, and
`fhir-server report rebuild`.

The same evaluation as `Measure/[id]/$evaluate-measure` (so the same
suppression), run against the store directly by an operator; each run is
recorded as an AuditEvent. `rebuild` clears the rollups and folds the whole
history again, printing its progress.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
import typer

from fhir_server.audit.recorder import AuditRecorder
from fhir_server.cli_support import fail, load_settings, store_errors
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.reporting import measures, rollups
from fhir_server.settings import Settings
from fhir_server.store.connection import open_database
from fhir_server.store.report_store import ReportStore
from fhir_server.store.resources import ResourceStore

REBUILD = "rebuild"
_NAMES = ", ".join(d.id for d in measures.DEFINITIONS)


async def _rebuild(settings: Settings) -> int:
    zone = ZoneInfo(settings.report_timezone)

    def progress(stream: str, read: int) -> None:
        typer.echo(f"{stream}: {read} versions read", err=True)

    async with open_database(settings) as database:
        store = ResourceStore(database, indexer=ResourceIndexer(settings.base_url))
        return await rollups.rebuild(store, zone, progress)


async def _evaluate(settings: Settings, request: measures.Request) -> dict[str, Any]:
    zone = ZoneInfo(settings.report_timezone)
    async with open_database(settings) as database:
        store = ResourceStore(database, indexer=ResourceIndexer(settings.base_url))
        measures.checked(request)
        await rollups.follow(store, zone)
        report = await measures.evaluate(
            ReportStore(store),
            request,
            late_hours=settings.report_late_cancel_hours,
            today=datetime.now(UTC).astimezone(zone).date(),
        )
        detail = f"Measure/{request.measure} {request.start}..{request.end}"
        await AuditRecorder(store).record("report-run", success=True, who="cli", detail=detail)
        return report


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as table rows: group, stratifier, stratum, population, count, score;
    hidden values as `<11`."""
    out: list[dict[str, Any]] = []
    for group in report.get("group", []):
        code = group["code"]["coding"][0]["code"]
        name = group["code"].get("text") or code
        out += _element_rows(name, "", "", group)
        for stratifier in group.get("stratifier", []):
            by = stratifier["code"][0]["text"]
            for stratum in stratifier.get("stratum", []):
                out += _element_rows(name, by, stratum["value"]["text"], stratum)
    return out


def _element_rows(
    group: str, by: str, stratum: str, element: dict[str, Any]
) -> list[dict[str, Any]]:
    base = {"group": group, "stratifier": by, "stratum": stratum}
    out = [
        {
            **base,
            "population": p["code"]["coding"][0]["code"],
            "value": p.get("count", "<11"),
        }
        for p in element.get("population", [])
    ]
    if "measureScore" in element:
        out.append({**base, "population": "score", "value": element["measureScore"]["value"]})
    elif element.get("extension"):
        out.append({**base, "population": "score", "value": "<11"})
    return out


def _csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, ["group", "stratifier", "stratum", "population", "value"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows(report))
    return buffer.getvalue()


def report(
    metric: Annotated[str, typer.Argument(help=f"A measure ({_NAMES}), or 'rebuild'.")],
    from_: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")
    ] = None,
    to: Annotated[
        datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day.")
    ] = None,
    by: Annotated[list[str] | None, typer.Option("--by", help="A stratifier (repeatable).")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Location/[id], Practitioner/[id] or HealthcareService/[id].")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
) -> None:
    """A report over a period, suppressed as on the API; or rebuild the rollups."""
    settings = load_settings()
    if metric == REBUILD:
        with store_errors():
            count = asyncio.run(_rebuild(settings))
        typer.echo(f"Rollups rebuilt: {count} appointments and slots.")
        return
    if output not in ("csv", "json"):
        fail("--format is csv or json.")
    if from_ is None or to is None:
        fail("--from and --to are required (YYYY-MM-DD).")
    request = measures.Request(
        metric,
        date.fromordinal(from_.toordinal()),
        date.fromordinal(to.toordinal()),
        subject,
        tuple(by or ()),
    )
    try:
        with store_errors():
            found = asyncio.run(_evaluate(settings, request))
    except FhirError as error:
        fail(error.diagnostics)
    if output == "json":
        typer.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(_csv(found), nl=False)
