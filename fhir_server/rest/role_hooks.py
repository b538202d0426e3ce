"""The role rules that compare a write with what is stored, run before the write.

`auth.roles.refused_write` decides (pure); `guarded` wraps the per-type write
hooks so every create, update and patch of the types a patient or
practitioner may write, plain or inside a Bundle, is asked with the stored
version it replaces: clinic-controlled fields and other participants'
statuses stay as stored, and a deleted id is re-created only by whoever it
belonged to. A refusal is a 403 OperationOutcome; nothing is written.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.policy import TokenContext
from fhir_server.auth.roles import WRITE_CHECKED, WRITE_CHECKED_TYPES, refused_write, role_of
from fhir_server.fhir.errors import Forbidden, Gone, NotFound
from fhir_server.rest.services import WriteContext, WriteHook
from fhir_server.store.resources import Version


def guarded(hooks: dict[str, WriteHook]) -> dict[str, WriteHook]:
    """The write hooks with the role check in front of each checked type's."""
    return {**hooks, **{t: _guard(hooks.get(t)) for t in WRITE_CHECKED_TYPES}}


def _guard(inner: WriteHook | None) -> WriteHook:
    async def hook(write: WriteContext) -> tuple[Version, bool] | None:
        token = write.request.auth
        if isinstance(token, TokenContext) and role_of(token) in WRITE_CHECKED:
            old, previous = await _stored(write)
            refusal = refused_write(token, write.body, old, previous)
            if refusal:
                raise Forbidden(refusal)
        return await inner(write) if inner else None

    return hook


async def _stored(write: WriteContext) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The live version a write replaces, or the last live one of a deleted id."""
    body = write.body
    if write.request.method == "POST" or "id" not in body:
        return None, None
    rtype, rid = str(body["resourceType"]), str(body["id"])
    current = await write.store.current(rtype, rid, write.uow)
    if current is None:
        return None, None
    if not current.deleted:
        return current.resource, None
    for version in range(current.version - 1, 0, -1):
        try:
            return None, (await write.store.vread(rtype, rid, version)).resource
        except (Gone, NotFound):
            continue
    return None, None
