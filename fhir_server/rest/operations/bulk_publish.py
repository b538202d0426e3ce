"""`[base]/$bulk-publish` (SMART Scheduling Links): the manifest of published availability.

Public by design: a slot finder polls it without a token. It runs as the
anonymous `PUBLIC_CALLER` whoever calls (`Operation.public`), through the
same access gate as every request: its scopes read only the Locations,
Schedules and Slots the clinic tagged public (`publishing.public`), and it is
granted this one system operation by name. The NDJSON files the manifest
points at are fetched as the same caller (`rest.publish_files`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir_server.auth.policy import TokenContext
from fhir_server.auth.scopes import ScopeSet
from fhir_server.fhir.errors import MethodNotAllowed
from fhir_server.fhir.instants import fhir_instant
from fhir_server.publishing.manifest import manifest
from fhir_server.publishing.public import PUBLIC_CLIENT, PUBLIC_SCOPES
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import CANONICAL, definition, moment, param
from fhir_server.rest.services import Operation, Services

CODE = "bulk-publish"
PUBLIC_CALLER = TokenContext(
    scopes=ScopeSet.parse(PUBLIC_SCOPES),
    client_id=PUBLIC_CLIENT,
    operations=frozenset({CODE}),
)
# A write's lastUpdated is taken a moment before it commits: the manifest's
# transactionTime is set this far back, so a poll from it repeats, never misses, a change.
SETTLE = timedelta(seconds=2)

_DEFINED = {
    **definition(
        CODE,
        "Slot",
        "SMART Scheduling Links bulk publish: a manifest (transactionTime, request, output) "
        "whose outputs are NDJSON files of the published Locations, Schedules and Slots, built "
        "from live availability when fetched. Public: no token needed; only what the clinic "
        "tagged public. Pass the previous transactionTime as _since for what changed since.",
        [param("_since", "in", "instant", doc="Only resources changed at or after this time.")],
        type_level=False,
    ),
    "id": CODE,
    "url": f"{CANONICAL}/OperationDefinition/{CODE}",
    "system": True,
}
DEFINITION = {k: v for k, v in _DEFINED.items() if k != "resource"}  # system level only


def since_of(req: FhirRequest) -> str | None:
    """The `_since` input as a UTC instant (400 when it is not a FHIR instant)."""
    given = req.param("_since")
    return fhir_instant(moment(given, "_since")) if given else None


def cache_control(services: Services) -> dict[str, str]:
    return {"Cache-Control": f"public, max-age={services.settings.publish_max_age}"}


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method != "GET":
        raise MethodNotAllowed(f"${CODE} is invoked with GET.")
    since = since_of(req)
    now = datetime.now(UTC)
    request = f"{services.base_url}/${CODE}" + (f"?_since={since}" if since else "")
    body = manifest(services.base_url, request, fhir_instant(now - SETTLE), since)
    # A Bulk Data style manifest is plain JSON, not a FHIR resource.
    return FhirResponse(200, body, {**cache_control(services), "Content-Type": "application/json"})


OPERATION = Operation(DEFINITION, handle, public=PUBLIC_CALLER)
