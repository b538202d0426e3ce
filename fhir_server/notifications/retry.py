"""An admin's retry of a stored message that failed or waits for its next attempt.

A message (`notifications.message`) that ended `not-done` (a permanent failure
or its last attempt) goes back to `preparation` with a fresh count of
attempts; one that waits for a later attempt loses its wait. Either is then
published at once, and the worker claims it as any other (the claim still
makes sure it is sent once). A message being sent or already sent is left
alone: retrying it could only send it twice.
"""

from __future__ import annotations

from fhir_server.fhir.errors import Conflict, Unprocessable
from fhir_server.notifications import celery_app
from fhir_server.notifications.message import details_of, with_details
from fhir_server.store.resources import ResourceStore, Version

RETRIED = frozenset({"not-done", "preparation"})


async def retry(store: ResourceStore, cid: str) -> Version:
    """Make the message due now and publish it; the new version."""
    current = await store.read("Communication", cid)
    communication = current.resource or {}
    if not details_of(communication):
        raise Unprocessable(f"Communication/{cid} is not a message the server sends.")
    status = communication.get("status")
    if status not in RETRIED:
        raise Conflict(f"Communication/{cid} is {status}: only a failed or waiting one is retried.")
    body = with_details(communication, attempts=0, nextAttempt=None)
    body = {k: v for k, v in body.items() if k != "statusReason"}
    version, _ = await store.update(
        {**body, "status": "preparation"}, expected_version=current.version
    )
    celery_app.enqueue_soon([cid])
    return version
