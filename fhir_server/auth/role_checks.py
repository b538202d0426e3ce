"""Who a practitioner is, for the role rules: the references they act through.

A practitioner acts through their Practitioner and their PractitionerRoles
(a clinic's Schedules and the Appointments booked on them name the
PractitionerRole): `with_actors` looks those up once per request (the gate
calls it), so "their own" records are found whichever reference names them.
The writes' facts are gathered by `rest.role_hooks`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from fhir_server.auth.policy import TokenContext
from fhir_server.auth.roles import role_of


class _Searcher(Protocol):
    async def matching_ids(self, rtype: str, params: list[tuple[str, str]]) -> list[str]: ...


async def with_actors(searcher: _Searcher, ctx: TokenContext) -> TokenContext:
    """The token with the references its practitioner acts through (`actors`)."""
    me = ctx.fhir_user or ""
    if role_of(ctx) != "practitioner" or ctx.actors or not me.startswith("Practitioner/"):
        return ctx
    found = await searcher.matching_ids("PractitionerRole", [("practitioner", me)])
    return replace(ctx, actors=(me, *(f"PractitionerRole/{rid}" for rid in found)))
