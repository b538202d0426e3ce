"""`/auth/manage`: a signed-in user sees which apps hold lasting access and can end it.

The page advertised as `manage` in the CapabilityStatement's oauth-uris. A live
refresh token stands for one app authorization (its family); stopping it
revokes the whole family, access tokens included.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.scopes import plain_words, split_scope
from fhir_server.auth.web import (
    client_ip,
    components_of,
    make_ticket,
    page,
    read_ticket,
    throttled,
)

router = APIRouter(include_in_schema=False)
_BINDING = [("page", "manage")]


async def _grants(auth: AuthComponents, username: str) -> list[dict[str, Any]]:
    grants: dict[str, dict[str, Any]] = {}
    for doc in await auth.store.live_refresh_tokens(username, int(time.time())):
        client = await auth.clients.get(doc["client_id"])
        grants[doc["family"]] = {
            "family": doc["family"],
            "client_name": client.name if client else doc["client_id"],
            "scopes": [plain_words(s) for s in split_scope(doc.get("scope"))],
        }
    return list(grants.values())


async def _listing(auth: AuthComponents, username: str, message: str | None = None) -> Response:
    return page(
        "manage.html",
        title="Apps with access",
        action="/auth/manage",
        username=username,
        ticket=make_ticket(auth.settings.secret_key, username, _BINDING),
        grants=await _grants(auth, username),
        message=message,
    )


@router.get("/auth/manage")
async def manage_form(request: Request) -> Response:
    components_of(request)
    return page("manage.html", title="Apps with access", action="/auth/manage", ticket=None)


@router.post("/auth/manage")
async def manage(request: Request) -> Response:
    auth = components_of(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    if form.get("step") == "revoke":
        ticket = read_ticket(auth.settings.secret_key, form.get("ticket", ""), _BINDING)
        username = ticket.username if ticket else None
        if username is None:
            return page(
                "manage.html",
                title="Apps with access",
                action="/auth/manage",
                ticket=None,
                error="Please sign in again.",
            )
        family = form.get("family", "")
        if family in {g["family"] for g in await _grants(auth, username)}:
            await auth.store.revoke_family(family)
            await auth.audit.record("token-revoked", success=True, who=username)
        return await _listing(auth, username, "That app's access has been stopped.")
    if limited := await throttled(auth, request, "login"):
        return limited
    username = form.get("username", "")
    user = await auth.accounts.login(username, form.get("password", ""), form.get("totp"))
    await auth.audit.record(
        "login", success=user is not None, who=username[:100], address=client_ip(request)
    )
    if user is None:
        return page(
            "manage.html",
            title="Apps with access",
            action="/auth/manage",
            ticket=None,
            error="The user name or password is wrong, or the account is locked.",
        )
    return await _listing(auth, user.username)
