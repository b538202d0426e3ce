"""A bulk export's status URL and files (Bulk Data Access 2.0), under `/fhir/bulk-export/`.

- `GET .../{job}`: 202 with `X-Progress` and `Retry-After` while the job runs,
  200 with the manifest (`application/json`) once it is complete, 500 with an
  OperationOutcome when it failed;
- `DELETE .../{job}`: cancels the job and deletes its files (202);
- `GET .../{job}/{Type}.ndjson`: one type's file (`application/fhir+ndjson`),
  streamed part after part from the store.

Each answers only the client that started the job (the same client id, with a
valid token; anyone else gets 404, so job ids reveal nothing), and nothing
after the job expires (`export_file_lifetime`). The manifest is not a FHIR
resource, so these routes sit beside the FHIR endpoint, not behind it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fhir_server.bulk.jobs import manifest, progress
from fhir_server.bulk.request import NDJSON
from fhir_server.fhir.errors import FhirError, Issue, NotFound, operation_outcome
from fhir_server.rest.http import error_response, fhir_json_response, services_of
from fhir_server.store.export_store import RUNNING, ExportStore

router = APIRouter(include_in_schema=False)
PATH = "/fhir/bulk-export/{job_id}"
# Seconds a client should wait between polls.
RETRY_AFTER = 2


async def _job(request: Request, job_id: str) -> dict[str, Any]:
    """The caller's live job, or NotFound (unknown, cancelled, expired, someone else's)."""
    address = request.client.host if request.client else "unknown"
    authorization = request.headers.get("authorization")
    await request.app.state.limiter.check(address, authorization)
    services = services_of(request)
    caller = None
    if services.access is not None:
        caller = await services.access.authenticate(authorization)
    job = await ExportStore(services.store.database).get(job_id)
    unknown = NotFound("No such bulk export (it may have expired or been cancelled).")
    if job is None or job["status"] == "cancelled":
        raise unknown
    if job.get("expires") is not None and job["expires"] < time.time():
        raise unknown
    requester = job.get("requester")
    if caller is not None and (requester is None or caller.client_id != requester["client_id"]):
        raise unknown
    return job


@router.get(PATH)
async def status(request: Request, job_id: str) -> Response:
    try:
        job = await _job(request, job_id)
    except FhirError as error:
        return error_response(error)
    if job["status"] in RUNNING:
        headers = {"X-Progress": progress(job), "Retry-After": str(RETRY_AFTER)}
        return Response(status_code=202, headers=headers)
    if job["status"] == "error":
        outcome = operation_outcome([Issue("exception", "The export failed.")])
        return fhir_json_response(500, outcome)
    expires = formatdate(job["expires"], usegmt=True)
    base_url = services_of(request).settings.base_url
    return JSONResponse(manifest(job, base_url), headers={"Expires": expires})


@router.delete(PATH)
async def cancel(request: Request, job_id: str) -> Response:
    try:
        await _job(request, job_id)
        await ExportStore(services_of(request).store.database).cancel(job_id, time.time())
    except FhirError as error:
        return error_response(error)
    done = Issue("informational", "The export is cancelled and its files deleted.", "information")
    return fhir_json_response(202, operation_outcome([done]))


@router.get(PATH + "/{name}")
async def download(request: Request, job_id: str, name: str) -> Response:
    try:
        job = await _job(request, job_id)
        rtype, _, suffix = name.partition(".")
        listed = {o["type"] for o in job.get("outputs") or []}
        if job["status"] != "completed" or suffix != "ndjson" or rtype not in listed:
            raise NotFound("This export has no such file.")
    except FhirError as error:
        return error_response(error)
    exports = ExportStore(services_of(request).store.database)

    async def body() -> AsyncIterator[bytes]:
        async for text in exports.part_texts(job_id, rtype):
            yield text.encode()

    return StreamingResponse(body(), media_type=NDJSON)
