"""`$export` kick-off (FHIR Bulk Data Access 2.0) at system, `Patient` and `Group/[id]` level.

The request is checked (`bulk.request`), stored as a job (`bulk.jobs`) and
queued for the Celery worker; the answer is 202 with the job's status URL in
`Content-Location` (polled, downloaded and cancelled at `rest.bulk_routes`).
The access gate decided who may ask (`auth.policy`: a SMART Backend Services
token with system/ read scopes); the job keeps the token's client and scopes,
and only the types they let it read are exported, every resource passing the
same visibility decision on its way into a file.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

import anyio

from fhir_server.auth.policy import TokenContext
from fhir_server.bulk import queue
from fhir_server.bulk.jobs import new_job, status_url
from fhir_server.bulk.request import NDJSON, level_types, parse_request
from fhir_server.fhir.errors import BadRequest, Forbidden, Issue, operation_outcome
from fhir_server.fhir.search_syntax import SearchParser
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.prefer import preference
from fhir_server.rest.services import Operation, Services
from fhir_server.store.clock import now_instant
from fhir_server.store.export_store import ExportStore

BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"


def _definition(id_: str, level: str, resource: list[str]) -> dict[str, Any]:
    """The Bulk Data IG's OperationDefinition, limited to the parameters served here."""

    def param(name: str, type_: str, max_: str, doc: str) -> dict[str, Any]:
        return {"name": name, "use": "in", "min": 0, "max": max_, "type": type_,
                "documentation": doc}  # fmt: skip

    return {
        "resourceType": "OperationDefinition",
        "id": id_,
        "url": f"{BULK}/{id_}",
        "name": id_.replace("-", "_").title().replace("_", ""),
        "status": "active",
        "kind": "operation",
        "description": f"FHIR Bulk Data Access 2.0 export at {level} level (asynchronous: "
        "Prefer: respond-async; NDJSON files listed in a manifest).",
        "affectsState": False,
        "code": "export",
        **({"resource": resource} if resource else {}),
        "system": level == "system",
        "type": level == "patient",
        "instance": level == "group",
        "parameter": [
            param("_outputFormat", "string", "1", f"{NDJSON} (or application/ndjson, ndjson)."),
            param("_since", "instant", "1", "Only resources changed at or after this instant."),
            param("_type", "string", "*", "Comma-separated resource types to export."),
            param("_typeFilter", "string", "*", "Type?query: a type's rows must match one."),
        ],
    }


async def kick_off(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method not in ("GET", "POST"):
        raise BadRequest("$export is started with GET or POST.")
    if preference(req.header("prefer"), "respond-async") is None:
        raise BadRequest("$export runs asynchronously: send the header Prefer: respond-async.")
    interaction = req.interaction
    level = {"Patient": "patient", "Group": "group"}.get(interaction.resource_type or "", "system")
    settings = services.settings
    parser = SearchParser(settings.base_url, settings.default_page_size, settings.max_page_size)
    request = parse_request(level, interaction.rid, _inputs(req), parser)
    if request.group is not None:
        await services.store.read("Group", request.group)  # 404 or 410 when there is none
    limits = req.limits
    wanted = request.types or level_types(level)
    types = [t for t in wanted if limits is None or limits.of(t) is not None]
    if not types:
        raise Forbidden("The access token may read none of the resource types to export.")
    job_id = uuid.uuid4().hex
    job = new_job(
        job_id,
        request,
        types=types,
        omitted=[t for t in request.types if t not in types],
        requester=_requester(req.auth),
        request_url=_request_url(settings.base_url, req),
        transaction_time=now_instant(),
    )
    await ExportStore(services.store.database).create(job)
    await anyio.to_thread.run_sync(queue.publish, job_id)
    accepted = Issue("informational", "The export has started.", severity="information")
    location = status_url(settings.base_url, job_id)
    return FhirResponse(202, operation_outcome([accepted]), {"Content-Location": location})


def _inputs(req: FhirRequest) -> dict[str, list[str]]:
    """Every input by name: the query (or form) values, then a Parameters body's."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, value in req.params:
        found[name].append(value)
    body = req.body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter") or []:
            if not isinstance(parameter, dict):
                continue
            given = next((v for k, v in parameter.items() if k.startswith("value")), None)
            if given is not None:
                found[str(parameter.get("name", ""))].append(str(given))
    elif body is not None:
        raise BadRequest("A POSTed $export takes a Parameters resource.")
    return found


def _requester(auth: Any) -> dict[str, Any] | None:
    """Who asked, as the job keeps it: the token's client, subject and scopes."""
    if not isinstance(auth, TokenContext):
        return None
    scope = " ".join(s.text() for s in auth.scopes.resources)
    return {"client_id": auth.client_id, "sub": auth.sub, "scope": scope}


def _request_url(base_url: str, req: FhirRequest) -> str:
    url = f"{base_url}/{'/'.join(req.path)}"
    return f"{url}?{urlencode(req.params, safe=',')}" if req.params else url


SYSTEM = Operation(_definition("export", "system", []), kick_off)
PATIENT = Operation(_definition("patient-export", "patient", ["Patient"]), kick_off)
GROUP = Operation(_definition("group-export", "group", ["Group"]), kick_off)
EXPORT_OPERATIONS = [SYSTEM, PATIENT, GROUP]
