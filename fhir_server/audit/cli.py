"""`fhir-server audit who-accessed Patient/ID --since DATE`: who saw this patient's data.

The answer is every AuditEvent recorded in the period whose entities name the
patient or a resource in the patient's compartment (their Appointments, ...):
events name the patients of every resource they return (`audit.trail`), and
the compartment's current resources catch the events that could only name
a resource (a refused read, a delete). It runs the same search an admin's
`GET AuditEvent?entity=...&date=...` would, straight on the store.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import orjson
import typer

from fhir_server.auth.compartment import DIRECTORY_TYPES, compartment_params
from fhir_server.cli_support import load_settings, store_errors
from fhir_server.fhir.audit_rows import COLUMNS, audit_row
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.resource_types import SERVED_TYPES
from fhir_server.fhir.search_params import search_params
from fhir_server.rest.search import FhirSearcher
from fhir_server.store.audit_store import AUDIT_EVENT
from fhir_server.store.connection import open_database
from fhir_server.store.resources import ResourceStore

audit_app = typer.Typer(name="audit", help="The audit trail (AuditEvents).", no_args_is_help=True)

_PATIENT = re.compile(r"^Patient/[A-Za-z0-9\-.]{1,64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$")
_FORMATS = ("table", "csv", "json")
_PAGE = "500"


def _next_cursor(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if link["relation"] == "next":
            return str(parse_qs(urlsplit(link["url"]).query)["_cursor"][0])
    return None


async def _search_all(
    searcher: FhirSearcher, rtype: str, params: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Every match of a search, page after page."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = [*params, ("_count", _PAGE), *([("_cursor", cursor)] if cursor else [])]
        bundle = await searcher.search_bundle(rtype, page, strict=True)
        found += [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
        cursor = _next_cursor(bundle)
        if cursor is None:
            return found


async def _compartment(searcher: FhirSearcher, patient: str) -> list[str]:
    """`Type/id` of the current resources in the patient's compartment (the directory aside)."""
    refs = [patient]
    for rtype, params in sorted(compartment_params().items()):
        if rtype not in SERVED_TYPES or rtype in DIRECTORY_TYPES or rtype == "Patient":
            continue
        for param in (p for p in params if p in search_params(rtype)):
            found = await _search_all(searcher, rtype, [(param, patient)])
            refs += [f"{rtype}/{r['id']}" for r in found]
    return list(dict.fromkeys(refs))


async def accesses(
    searcher: FhirSearcher, patient: str, since: str, until: str | None
) -> list[dict[str, Any]]:
    """The AuditEvents naming the patient or their compartment's resources, oldest first."""
    params = [
        ("entity", ",".join(await _compartment(searcher, patient))),
        ("date", f"ge{since}"),
        ("_sort", "date"),
    ]
    if until:
        params.append(("date", f"lt{until}"))
    return await _search_all(searcher, AUDIT_EVENT, params)


def render(rows: list[dict[str, str]], form: str) -> str:
    columns = list(COLUMNS)
    if form == "json":
        return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode()
    if form == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    lines: Iterable[dict[str, str]] = [{c: c for c in columns}, *rows]
    return "\n".join("  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in lines)


def _fail(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@audit_app.command("who-accessed")
def who_accessed(
    patient: Annotated[str, typer.Argument(help="The patient, as Patient/ID.")],
    since: Annotated[str, typer.Option(help="From this date or instant (inclusive).")],
    until: Annotated[
        str | None, typer.Option(help="Up to this date or instant (exclusive).")
    ] = None,
    form: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Who saw this patient's data: every recorded access, refused ones included."""
    if not _PATIENT.match(patient):
        _fail(f"The patient must be given as Patient/ID, not {patient!r:.80}.")
    for name, value in (("--since", since), ("--until", until)):
        if value is not None and not _DATE.match(value):
            _fail(
                f"{name} must be a date (2026-01-31) or an instant with a zone, not {value!r:.40}."
            )
    if form not in _FORMATS:
        _fail(f"--format must be one of {', '.join(_FORMATS)}, not {form!r:.20}.")
    settings = load_settings()

    async def run() -> list[dict[str, Any]]:
        async with open_database(settings) as database:
            store = ResourceStore(database, ResourceIndexer(settings.base_url))
            return await accesses(FhirSearcher(store, settings), patient, since, until)

    try:
        with store_errors():  # worded as every other command words it
            events = asyncio.run(run())
    except FhirError as error:
        _fail(error.diagnostics)
    typer.echo(render([audit_row(e) for e in events], form))
