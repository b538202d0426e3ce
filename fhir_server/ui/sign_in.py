"""Signing in and out of a site of the UI (portal or clinic), and keeping an idle session alive.

`/sign-in` starts an authorization request (see `oauth`) in a new server-side
session; `/callback` accepts the answer only with that session's `state`,
exchanges the code, and replaces the session by a new one (a new id: a
session id seen before sign-in is never a signed-in one). `/sign-out`
revokes the tokens and forgets the session.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fhir_server.ui import oauth
from fhir_server.ui.session import Session
from fhir_server.ui.web import CheckedForm, Page, SignedIn, Visitor, portal_of

router = APIRouter()


@router.get("/sign-in")
async def sign_in(request: Request, page: Visitor) -> Response:
    target = page.safe_next(request.query_params.get("next"))
    if page.session is not None and page.session.signed_in:
        return page.redirect(target)
    portal = portal_of(request)
    location, pending = oauth.start(portal.settings, portal.client, page.lang)
    session = Session.new()
    session.pending = pending | {"next": target}
    await portal.sessions.save(session)
    response = page.redirect(location)
    portal.sessions.set_cookie(response, session)
    return response


def _sign_in_failed(page: Page, message: str, status: int = 400) -> Response:
    return page.render(
        "portal/sign_in_failed.html",
        title=page._("You are not signed in"),
        status=status,
        message=message,
    )


@router.get("/callback")
async def callback(request: Request, page: Visitor) -> Response:
    portal = portal_of(request)
    query = request.query_params
    pending = page.session.pending if page.session else None
    if page.session is None or pending is None or query.get("state") != pending["state"]:
        # Not the answer to a sign-in this browser started (or it took too long).
        return _sign_in_failed(page, page._("The sign-in took too long or was not started here."))
    await portal.sessions.delete(page.session)  # a state is good for one answer only
    if query.get("error") == "access_denied":
        message = page._("You chose not to let the portal use your account.")
        return _sign_in_failed(page, message, status=200)
    code = query.get("code")
    if not code:
        return _sign_in_failed(page, page._("The sign-in did not finish."))
    try:
        tokens = await oauth.exchange(
            portal.http(request), portal.client, code, pending["verifier"]
        )
    except oauth.TokenRefused:
        return _sign_in_failed(page, page._("The sign-in did not finish."))
    session = Session.new()
    session.tokens = tokens
    await portal.sessions.save(session)
    response = page.redirect(page.safe_next(pending["next"]))
    portal.sessions.set_cookie(response, session)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, page: Visitor, _form: CheckedForm) -> Response:
    portal = portal_of(request)
    response = page.redirect(page.url("/signed-out"))
    if page.session is not None:
        if page.session.tokens is not None:
            await oauth.revoke(portal.http(request), portal.client, page.session.tokens)
        await portal.sessions.delete(page.session)
    portal.sessions.clear_cookie(response)
    return response


@router.get("/signed-out")
async def signed_out(request: Request, page: Visitor) -> Response:
    idle = request.query_params.get("reason") == "idle"
    return page.render(
        "portal/signed_out.html",
        title=page._("You have been signed out") if idle else page._("You are signed out"),
        idle=idle,
        minutes=page.settings.portal_idle_timeout // 60,
        again=page.url("/sign-in", next=page.safe_next(request.query_params.get("next"))),
    )


@router.post("/session/keep-alive")
async def keep_alive(request: Request, page: SignedIn, form: CheckedForm) -> Response:
    """Restart the idle clock (the `SignedIn` dependency did); the warning's "Stay signed
    in" button, by fetch (JSON) or as a plain form (back to the page)."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"idle_timeout": page.settings.portal_idle_timeout})
    nxt = form.get("next")
    return page.redirect(page.safe_next(nxt if isinstance(nxt, str) else None))
