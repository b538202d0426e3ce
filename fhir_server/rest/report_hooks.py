"""What an Appointment write records for the reports, done once in front of its write hook.

`recorded` wraps the Appointment write hook (plain writes, Bundle entries and
the booking engine alike): a new Appointment gets the booking channel of the
caller's token, an update keeps the channel stored (a client that leaves the
extension out does not erase it), and a patient's cancellation gets its
reason coded `pat` (`reporting.channel`). The body is changed in place because
the plain store write that follows a hook that declines uses the same dict.
"""

from __future__ import annotations

from fhir_server.auth.policy import TokenContext
from fhir_server.auth.roles import role_of
from fhir_server.reporting import channel
from fhir_server.rest.messages import FhirRequest
from fhir_server.rest.services import WriteContext, WriteHook
from fhir_server.store.resources import Version


def recorded(hooks: dict[str, WriteHook]) -> dict[str, WriteHook]:
    """The write hooks with the report stamps in front of the Appointment's."""
    return {**hooks, "Appointment": _stamping(hooks.get("Appointment"))}


def token_channel(req: FhirRequest) -> str | None:
    """The booking channel of the request's token; None without one (auth off)."""
    token = req.auth
    if not isinstance(token, TokenContext):
        return None
    return channel.channel_of(
        token.client_id,
        has_user=role_of(token) is not None,
        system_scopes=any(s.context == "system" for s in token.scopes.resources),
    )


def _stamping(inner: WriteHook | None) -> WriteHook:
    async def hook(write: WriteContext) -> tuple[Version, bool] | None:
        body, req = write.body, write.request
        stored = None
        if req.method != "POST" and "id" in body:
            current = await write.store.current("Appointment", str(body["id"]), write.uow)
            stored = current.resource if current is not None and not current.deleted else None
        if stored is None:
            channel.stamp_channel(body, token_channel(req))
        else:
            channel.stamp_channel(body, channel.channel_in(stored))
        token = req.auth
        if isinstance(token, TokenContext) and role_of(token) == "patient":
            channel.stamp_patient_cancellation(body)
        return await inner(write) if inner else None

    return hook
