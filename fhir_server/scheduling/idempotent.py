"""Safe retries of booking requests: the first result of an Idempotency-Key is the answer.

The key is reserved in the database before booking (so two processes retrying
the same request cannot both book), completed with the written version, and
released if the booking failed so that the client may try again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fhir_server.fhir.errors import BadRequest, Conflict, Unprocessable
from fhir_server.store import idempotency
from fhir_server.store.clock import to_instant
from fhir_server.store.resources import ResourceStore, Version

_MAX_KEY = 200
# An unfinished claim older than this was left by a process that died mid-request.
STALE_AFTER = timedelta(minutes=2)


async def once(
    store: ResourceStore,
    key: str | None,
    fingerprint: Callable[[], str],
    action: Callable[[], Awaitable[Version]],
) -> tuple[Version, bool]:
    """(version, replayed): run `action` once per key; a repeat returns the first version.

    `fingerprint()` identifies the request (method, path, body): reusing a key
    for a different request is refused rather than answered with another's result.
    It is only computed for a request with a key (hashing the body is not free).
    """
    if key is None:
        return await action(), False
    if not key.strip() or len(key) > _MAX_KEY:
        raise BadRequest(f"An Idempotency-Key is 1-{_MAX_KEY} characters.")
    scoped = f"booking:{key}"
    stale_before = to_instant(datetime.now(UTC) - STALE_AFTER)
    identity = fingerprint()
    recorded = await idempotency.reserve(store, scoped, identity, stale_before)
    if recorded is not None:
        if recorded.fingerprint != identity:
            raise Unprocessable("This Idempotency-Key was already used for a different request.")
        if recorded.resource_type is None or recorded.id is None or recorded.version is None:
            raise Conflict("A request with this Idempotency-Key is still running; retry shortly.")
        return await store.vread(recorded.resource_type, recorded.id, recorded.version), True
    try:
        version = await action()
    except BaseException:
        await idempotency.release(store, scoped)
        raise
    await idempotency.complete(
        store, scoped, version.resource_type, version.id, version.version, 201
    )
    return version, False
