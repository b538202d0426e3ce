"""Account pages: patient self-registration and password reset by e-mail."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from fhir_server.auth.urls import auth_base, portal_url
from fhir_server.auth.users import AccountError
from fhir_server.auth.web import STYLESHEET, components_of, here, page, throttled

router = APIRouter(include_in_schema=False)
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


@router.get("/auth/register")
async def register_form(request: Request) -> Response:
    auth = components_of(request)
    if not auth.settings.patient_self_registration:
        return page(
            request,
            "message.html",
            status=404,
            title="Registration",
            message="Registration is closed.",
        )
    return page(request, "register.html", title="Create your account", action=here(request))


@router.post("/auth/register")
async def register(request: Request) -> Response:
    auth = components_of(request)
    if not auth.settings.patient_self_registration:
        return page(
            request,
            "message.html",
            status=404,
            title="Registration",
            message="Registration is closed.",
        )
    if limited := await throttled(auth, request, "login"):
        return limited
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        await auth.registration.register_patient(form)
    except AccountError as error:
        return page(
            request,
            "register.html",
            status=400,
            title="Create your account",
            action=here(request),
            error=str(error),
        )
    # The same answer whether or not the user name was free (no enumeration of accounts).
    return page(
        request,
        "message.html",
        title="Registration received",
        message=REGISTERED,
        portal_url=portal_url(auth.settings),
    )


@router.get("/auth/password-reset")
async def reset_form(request: Request) -> Response:
    components_of(request)
    return page(request, "reset_request.html", title="Reset your password", action=here(request))


@router.post("/auth/password-reset")
async def reset_request(request: Request) -> Response:
    auth = components_of(request)
    if limited := await throttled(auth, request, "login"):
        return limited
    email = str((await request.form()).get("email", ""))
    answer = page(
        request,
        "message.html",
        title="Check your e-mail",
        message="If an account has this address, we have sent it a link to choose a new password.",
    )
    # Looked up and mailed after the answer is sent: its timing says nothing about the address.
    confirm_url = f"{auth_base(auth.settings)}/password-reset/confirm"
    answer.background = BackgroundTask(auth.resets.request, email, confirm_url)
    return answer


@router.get("/auth/password-reset/confirm")
async def reset_confirm_form(request: Request) -> Response:
    components_of(request)
    return page(
        request,
        "reset_confirm.html",
        title="Choose a new password",
        action=here(request),
        token=request.query_params.get("token", ""),
        error=None,
    )


@router.post("/auth/password-reset/confirm")
async def reset_confirm(request: Request) -> Response:
    auth = components_of(request)
    form = await request.form()
    token_value, password = str(form.get("token", "")), str(form.get("password", ""))
    try:
        await auth.resets.confirm(token_value, password)
    except AccountError as error:
        return page(
            request,
            "reset_confirm.html",
            status=400,
            title="Choose a new password",
            action=here(request),
            token=token_value,
            error=str(error),
        )
    return page(
        request,
        "message.html",
        title="Password changed",
        message="Your password is changed; sign in again.",
        portal_url=portal_url(auth.settings),
    )
