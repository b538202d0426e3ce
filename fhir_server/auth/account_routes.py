"""Account pages: patient self-registration and password reset by e-mail."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from fhir_server.auth.urls import auth_base, portal_url
from fhir_server.auth.users import AccountError
from fhir_server.auth.web import (
    STYLESHEET,
    components_of,
    form_forged,
    form_page,
    here,
    page,
    throttled,
)

router = APIRouter(include_in_schema=False)
FORGED = "This form has expired or did not come from this site; fill it in again."
REGISTERED = (
    "If this user name was free, your account is ready: sign in from your app. If you cannot "
    "sign in with it, the name was already in use: register again with another user name, "
    "or reset the password if that account is yours."
)


@router.get("/auth/static/auth.css")
async def stylesheet() -> Response:
    """The pages' one stylesheet (a file, so their CSP allows no inline style)."""
    return FileResponse(
        STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


def _closed(request: Request) -> Response:
    return page(
        request, "message.html", status=404, title="Registration", message="Registration is closed."
    )


async def _sent_form(request: Request) -> dict[str, str] | None:
    """The POSTed form; None when it may come from another site's page (its CSRF token
    does not match the cookie set with the form, or its Origin is not ours)."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    return None if await form_forged(request, form.get("csrf", "")) else form


def _register_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    return form_page(
        request,
        "register.html",
        status,
        title="Create your account",
        action=here(request),
        error=error,
    )


@router.get("/auth/register")
async def register_form(request: Request) -> Response:
    auth = components_of(request)
    if not auth.settings.patient_self_registration:
        return _closed(request)
    return _register_page(request)


@router.post("/auth/register")
async def register(request: Request) -> Response:
    auth = components_of(request)
    if not auth.settings.patient_self_registration:
        return _closed(request)
    if limited := await throttled(auth, request, "login"):
        return limited
    form = await _sent_form(request)
    if form is None:
        return _register_page(request, 403, FORGED)
    try:
        await auth.registration.register_patient(form)
    except AccountError as error:
        return _register_page(request, 400, str(error))
    # The same answer whether or not the user name was free (no enumeration of accounts).
    return page(
        request,
        "message.html",
        title="Registration received",
        message=REGISTERED,
        portal_url=portal_url(auth.settings),
    )


def _reset_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    return form_page(
        request,
        "reset_request.html",
        status,
        title="Reset your password",
        action=here(request),
        error=error,
    )


@router.get("/auth/password-reset")
async def reset_form(request: Request) -> Response:
    components_of(request)
    return _reset_page(request)


@router.post("/auth/password-reset")
async def reset_request(request: Request) -> Response:
    auth = components_of(request)
    if limited := await throttled(auth, request, "login"):
        return limited
    form = await _sent_form(request)
    if form is None:
        return _reset_page(request, 403, FORGED)
    answer = page(
        request,
        "message.html",
        title="Check your e-mail",
        message="If an account has this address, we have sent it a link to choose a new password.",
    )
    # Looked up and mailed after the answer is sent: its timing says nothing about the address.
    confirm_url = f"{auth_base(auth.settings)}/password-reset/confirm"
    answer.background = BackgroundTask(auth.resets.request, form.get("email", ""), confirm_url)
    return answer


def _confirm_page(
    request: Request, token: str, status: int = 200, error: str | None = None
) -> Response:
    return form_page(
        request,
        "reset_confirm.html",
        status,
        title="Choose a new password",
        action=here(request),
        token=token,
        error=error,
    )


@router.get("/auth/password-reset/confirm")
async def reset_confirm_form(request: Request) -> Response:
    components_of(request)
    return _confirm_page(request, request.query_params.get("token", ""))


@router.post("/auth/password-reset/confirm")
async def reset_confirm(request: Request) -> Response:
    auth = components_of(request)
    form = await _sent_form(request)
    token_value = (form or {}).get("token", "")
    if form is None:
        return _confirm_page(request, token_value, 403, FORGED)
    try:
        await auth.resets.confirm(token_value, form.get("password", ""))
    except AccountError as error:
        return _confirm_page(request, token_value, 400, str(error))
    return page(
        request,
        "message.html",
        title="Password changed",
        message="Your password is changed; sign in again.",
        portal_url=portal_url(auth.settings),
    )
