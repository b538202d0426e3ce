"""A bulk export's status URL and files (Bulk Data Access 2.0), under `/fhir/bulk-export/`.

- `GET .../{job}`: 202 with `X-Progress` and `Retry-After` while the job runs,
  200 with the manifest (`application/json`) once it is complete, 500 with an
  OperationOutcome when it failed;
- `DELETE .../{job}`: cancels the job and deletes its files (202);
- `GET .../{job}/{Type}.ndjson`: one type's file (`application/fhir+ndjson`),
  streamed part after part from the store.

Each answers only the client that started the job (the same client id, with a
valid token; anyone else gets 404, so job ids reveal nothing), and nothing
after the job expires (`export_file_lifetime`). Every request of a token, answered or
refused, is recorded as an AuditEvent (`audit.exports`). The manifest is not a FHIR
resource, so these routes sit beside the FHIR endpoint, not behind it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fhir_server.audit.exports import ExportAccess
from fhir_server.auth.policy import TokenContext
from fhir_server.bulk.jobs import manifest, progress
from fhir_server.bulk.request import NDJSON
from fhir_server.fhir.errors import FhirError, Issue, NotFound, operation_outcome
from fhir_server.rest.http import error_response, fhir_json_response, services_of
from fhir_server.store.export_store import RUNNING, ExportStore

router = APIRouter(include_in_schema=False)
PATH = "/fhir/bulk-export/{job_id}"
# Seconds a client should wait between polls.
RETRY_AFTER = 2


@dataclass
class _NoSuchJob(NotFound):
    """Answered as an unknown job whatever the reason, so job ids reveal nothing; `why` goes
    to the audit trail only."""

    why: str = ""


async def _caller(request: Request) -> TokenContext | None:
    """The caller's token (None when auth is off); raises Unauthorized or TooManyRequests."""
    address = request.client.host if request.client else "unknown"
    authorization = request.headers.get("authorization")
    await request.app.state.limiter.check(address, authorization)
    access = services_of(request).access
    return None if access is None else await access.authenticate(authorization)


async def _job(request: Request, caller: TokenContext | None, job_id: str) -> dict[str, Any]:
    """The caller's live job, or NotFound (unknown, cancelled, expired, someone else's)."""
    job = await ExportStore(services_of(request).store.database).get(job_id)
    unknown = "No such bulk export (it may have expired or been cancelled)."
    if job is None or job["status"] == "cancelled":
        raise _NoSuchJob(unknown, why="unknown or cancelled job")
    if job.get("expires") is not None and job["expires"] < time.time():
        raise _NoSuchJob(unknown, why="expired job")
    requester = job.get("requester")
    if caller is not None and (requester is None or caller.client_id != requester["client_id"]):
        raise _NoSuchJob(unknown, why="another client's job")
    return job


Answer = Callable[[dict[str, Any]], Awaitable[Response]]


async def _served(
    request: Request,
    job_id: str,
    answer: Answer,
    kind: Literal["read", "delete"] = "read",
    file_type: str | None = None,
) -> Response:
    """`answer` for the caller's job, answered or refused, and recorded when a token asked
    (a 401 is not: it would let anyone write rows; see README, Security)."""
    try:
        caller = await _caller(request)
    except FhirError as error:
        return error_response(error)
    try:
        response = await answer(await _job(request, caller, job_id))
    except FhirError as error:
        why = error.why if isinstance(error, _NoSuchJob) else error.diagnostics
        await _record(request, caller, ExportAccess(kind, job_id, error.status, file_type, why))
        return error_response(error)
    except Exception:
        failed = ExportAccess(kind, job_id, 500, file_type, "Internal Server Error")
        await _record(request, caller, failed)
        raise
    failed_job = "The export failed." if response.status_code >= 500 else None
    access = ExportAccess(kind, job_id, response.status_code, file_type, failed_job)
    await _record(request, caller, access)
    return response


async def _record(request: Request, caller: TokenContext | None, access: ExportAccess) -> None:
    if caller is not None:  # auth is on
        await request.app.state.auth.audit.export_access(caller, access)


@router.get(PATH)
async def status(request: Request, job_id: str) -> Response:
    async def answer(job: dict[str, Any]) -> Response:
        if job["status"] in RUNNING:
            headers = {"X-Progress": progress(job), "Retry-After": str(RETRY_AFTER)}
            return Response(status_code=202, headers=headers)
        if job["status"] == "error":
            outcome = operation_outcome([Issue("exception", "The export failed.")])
            return fhir_json_response(500, outcome)
        expires = formatdate(job["expires"], usegmt=True)
        base_url = services_of(request).settings.base_url
        return JSONResponse(manifest(job, base_url), headers={"Expires": expires})

    return await _served(request, job_id, answer)


@router.delete(PATH)
async def cancel(request: Request, job_id: str) -> Response:
    async def answer(job: dict[str, Any]) -> Response:
        await ExportStore(services_of(request).store.database).cancel(job_id, time.time())
        done = Issue(
            "informational", "The export is cancelled and its files deleted.", "information"
        )
        return fhir_json_response(202, operation_outcome([done]))

    return await _served(request, job_id, answer, "delete")


@router.get(PATH + "/{name}")
async def download(request: Request, job_id: str, name: str) -> Response:
    rtype, _, suffix = name.partition(".")

    async def answer(job: dict[str, Any]) -> Response:
        listed = {o["type"] for o in job.get("outputs") or []}
        if job["status"] != "completed" or suffix != "ndjson" or rtype not in listed:
            raise NotFound("This export has no such file.")
        exports = ExportStore(services_of(request).store.database)

        async def body() -> AsyncIterator[bytes]:
            async for text in exports.part_texts(job_id, rtype):
                yield text.encode()

        return StreamingResponse(body(), media_type=NDJSON)

    return await _served(request, job_id, answer, file_type=rtype)
