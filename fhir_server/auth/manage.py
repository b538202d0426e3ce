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
    form_forged,
    form_page,
    here,
    make_ticket,
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


def _page(request: Request, status: int = 200, **values: Any) -> Response:
    values.setdefault("ticket", None)
    return form_page(
        request, "manage.html", status, title="Apps with access", action=here(request), **values
    )


async def _listing(request: Request, username: str, message: str | None = None) -> Response:
    auth = components_of(request)
    return _page(
        request,
        username=username,
        ticket=make_ticket(auth.settings.secret_key, username, _BINDING),
        grants=await _grants(auth, username),
        message=message,
    )


@router.get("/auth/manage")
async def manage_form(request: Request) -> Response:
    components_of(request)
    return _page(request)


@router.post("/auth/manage")
async def manage(request: Request) -> Response:
    auth = components_of(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    if await form_forged(request, form.get("csrf", "")):
        expired = "This form has expired or did not come from this site; sign in again."
        return _page(request, 403, error=expired)
    if form.get("step") == "revoke":
        ticket = read_ticket(auth.settings.secret_key, form.get("ticket", ""), _BINDING)
        if ticket is None:
            return _page(request, error="Please sign in again.")
        family = form.get("family", "")
        if family in {g["family"] for g in await _grants(auth, ticket.username)}:
            await auth.store.revoke_family(family)
            await auth.audit.record("token-revoked", success=True, who=ticket.username)
        return await _listing(request, ticket.username, "That app's access has been stopped.")
    if limited := await throttled(auth, request, "login"):
        return limited
    username = form.get("username", "")
    user = await auth.accounts.login(username, form.get("password", ""), form.get("totp"))
    await auth.audit.record(
        "login", success=user is not None, who=username[:100], address=client_ip(request)
    )
    if user is None:
        wrong = "The user name or password is wrong, or the account is locked."
        return _page(request, error=wrong)
    return await _listing(request, user.username)
