"""The stored export job: made at kick-off, read back as a manifest or a progress line (pure).

A job document (`store.export_store`) holds what was asked (`level`, `group`,
`types`, `since`, `type_filters`), who asked (`requester`: the token's client,
subject and scopes, from which the worker works out the same read limits the
API would), `transaction_time`, where the work stands (`position`: the type
index, the last id written and the next part number) and, once the job is
`completed`, its `outputs`. Statuses: accepted -> in-progress -> completed,
or error, or cancelled (by `DELETE`).
"""

from __future__ import annotations

from typing import Any

from fhir_server.bulk.request import ExportRequest
from fhir_server.fhir.errors import Issue, operation_outcome

ERRORS = "OperationOutcome"  # the type of the manifest's `error` files


def new_job(
    job_id: str,
    request: ExportRequest,
    *,
    types: list[str],
    omitted: list[str],
    requester: dict[str, Any] | None,
    request_url: str,
    transaction_time: str,
) -> dict[str, Any]:
    """A job ready for a worker: `types` are those it will export, `omitted` those asked
    for that the token may not read (reported in the manifest's `error` file)."""
    return {
        "_id": job_id,
        "status": "accepted",
        "request": request_url,
        "requester": requester,
        "level": request.level,
        "group": request.group,
        "types": types,
        "omitted": omitted,
        "since": request.since,
        "type_filters": [list(pair) for pair in request.type_filters],
        "transaction_time": transaction_time,
        "position": {"index": 0, "after": None, "seq": 0, "count": 0},
        "outputs": [],
        "counted": 0,
        "failures": 0,
        "lease_owner": None,
        "lease_until": 0.0,
        "expires": None,
    }


def omitted_outcome(types: list[str]) -> dict[str, Any]:
    """The `error` file's line for types left out because the token may not read them."""
    return operation_outcome(
        [
            Issue(
                "forbidden",
                f"Not exported: the access token may not read {', '.join(types)}.",
                severity="warning",
            )
        ]
    )


def file_url(base_url: str, job_id: str, rtype: str) -> str:
    return f"{status_url(base_url, job_id)}/{rtype}.ndjson"


def status_url(base_url: str, job_id: str) -> str:
    return f"{base_url}/bulk-export/{job_id}"


def manifest(job: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The complete-status body (Bulk Data Access 2.0): one NDJSON file per type."""
    job_id = job["_id"]

    def entry(output: dict[str, Any]) -> dict[str, Any]:
        url = file_url(base_url, job_id, output["type"])
        return {"type": output["type"], "url": url, "count": output["count"]}

    outputs = job.get("outputs") or []
    return {
        "transactionTime": job["transaction_time"],
        "request": job["request"],
        "requiresAccessToken": True,
        "output": [entry(o) for o in outputs if o["type"] != ERRORS],
        "error": [entry(o) for o in outputs if o["type"] == ERRORS],
    }


def progress(job: dict[str, Any]) -> str:
    """The `X-Progress` header while the job runs."""
    if job["status"] == "accepted":
        return "queued"
    done = job["position"]["index"]
    return f"{job['counted']} resources written, {done} of {len(job['types'])} types done"
