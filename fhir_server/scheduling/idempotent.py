"""Safe retries of booking requests: the first result of an Idempotency-Key is the answer.

The key is reserved in the database before booking (so two processes retrying
the same request cannot both book). Its result is recorded in the booking's
own unit of work, so whenever the booking's writes exist the key names them,
even when the process died before answering; the reservation is released if
the booking failed so that the client may try again. A retry that finds the
first request unfinished settles that request's unit of work if it was cut
short (`store.recovery`), then answers from the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fhir_server.fhir.errors import BadRequest, Conflict, FhirError, Unprocessable
from fhir_server.store import idempotency, recovery
from fhir_server.store.clock import to_instant
from fhir_server.store.resources import ResourceStore, Version
from fhir_server.store.unit_of_work import UnitOfWork

_MAX_KEY = 200
# An unfinished claim older than this, with no unit of work stored, was left by a process
# that died before its booking was written.
STALE_AFTER = timedelta(minutes=2)
Action = Callable[[UnitOfWork | None], Awaitable[Version]]


async def once(
    store: ResourceStore,
    key: str | None,
    fingerprint: Callable[[], str],
    action: Action,
    uow: UnitOfWork | None = None,
) -> tuple[Version, bool]:
    """(version, replayed): run `action` once per key; a repeat returns the first version.

    `action` writes in the unit of work it is given (the caller's `uow`, or
    one opened here for a request with a key). `fingerprint()` identifies the
    request (method, path, body): reusing a key for a different request is
    refused rather than answered with another's result. It is only computed
    for a request with a key (hashing the body is not free).
    """
    if key is None:
        return await action(uow), False
    if not key.strip() or len(key) > _MAX_KEY:
        raise BadRequest(f"An Idempotency-Key is 1-{_MAX_KEY} characters.")
    scoped = f"booking:{key}"
    stale_before = to_instant(datetime.now(UTC) - STALE_AFTER)
    identity = fingerprint()
    reserved = await idempotency.reserve(store, scoped, identity, stale_before)
    if isinstance(reserved, idempotency.Recorded):
        return await _replay(store, scoped, identity, reserved), True
    # Only a refusal releases the key at once (nothing was written). Any other failure leaves
    # the reservation: recovery settles the unit of work, recording or releasing the key;
    # when there was none to settle, the reservation goes stale.
    try:
        if uow is not None:
            return await _run(scoped, reserved.token, identity, action, uow), False
        async with store.unit_of_work() as own:
            return await _run(scoped, reserved.token, identity, action, own), False
    except FhirError:
        await idempotency.release(store, scoped, reserved.token)
        raise


async def _run(key: str, token: str, identity: str, action: Action, uow: UnitOfWork) -> Version:
    version = await action(uow)
    result = idempotency.result(identity, version.resource_type, version.id, version.version, 201)
    uow.record_key(key, token, result)
    return version


async def _replay(
    store: ResourceStore, key: str, identity: str, recorded: idempotency.Recorded
) -> Version:
    """The first request's version; its unit of work is settled first if it was cut short."""
    if recorded.fingerprint != identity:
        raise Unprocessable("This Idempotency-Key was already used for a different request.")
    if recorded.version is None:  # unfinished: maybe cut short by a crash
        await recovery.settle(store.database, key=key)
        recorded = await idempotency.read(store, key) or recorded
    if recorded.resource_type is None or recorded.id is None or recorded.version is None:
        raise Conflict("A request with this Idempotency-Key is still running; retry shortly.")
    return await store.vread(recorded.resource_type, recorded.id, recorded.version)
