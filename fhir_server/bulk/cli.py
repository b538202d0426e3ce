"""`fhir-server export group --practitioner ID | --location ID`: a cohort for `$export`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from fhir_server.bulk.groups import Cohorts
from fhir_server.cli_support import fail, load_settings, store_errors
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.store.connection import open_database
from fhir_server.store.resources import ResourceStore, Version

export_app = typer.Typer(
    name="export", help="Bulk data export (FHIR $export) helpers.", no_args_is_help=True
)


@export_app.command("group")
def group(
    practitioner: Annotated[
        str | None, typer.Option(help="Practitioner id: the patients of their appointments.")
    ] = None,
    location: Annotated[
        str | None, typer.Option(help="Location id: the patients of appointments there.")
    ] = None,
) -> None:
    """Create or refresh the Group of a practitioner's or a location's patients."""
    if (practitioner is None) == (location is None):
        fail("Give exactly one of --practitioner and --location.")
    settings = load_settings()

    async def run() -> Version:
        async with open_database(settings) as database:
            cohorts = Cohorts(ResourceStore(database, ResourceIndexer(settings.base_url)), settings)
            if practitioner is not None:
                return await cohorts.of_practitioner(practitioner)
            return await cohorts.of_location(str(location))

    try:
        with store_errors():
            version = asyncio.run(run())
    except FhirError as error:
        fail(error.diagnostics)
    members = len((version.resource or {}).get("member", []))
    typer.echo(
        f"Group/{version.id} (version {version.version}): {members} patients. "
        f"Export it with GET {settings.base_url}/Group/{version.id}/$export"
    )
