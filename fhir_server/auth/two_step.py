"""`/auth/two-step`: a user turns on the second factor (TOTP) themself.

Sign in with the password, scan the QR code (or type the key) into an
authenticator app, and prove it works by entering one code: only then is the
secret stored, so a half-finished set-up never locks anyone out. Between the
two forms the new secret travels in the page, bound to the user by a signed,
single-use ticket (`auth.web`); it is shown to that user anyway.
"""

from __future__ import annotations

import io
from typing import Any

import pyotp
import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.auth.urls import portal_url
from fhir_server.auth.web import (
    client_ip,
    components_of,
    form_forged,
    form_page,
    here,
    make_ticket,
    page,
    read_ticket,
    throttled,
)

router = APIRouter(include_in_schema=False)
PATH = "/auth/two-step"
ISSUER = "Clinic"
TITLE = "Turn on two-step sign-in"
WRONG = "The user name or password is wrong, or the account is locked."


def _binding(secret: str) -> list[tuple[str, str]]:
    return [("page", "two-step"), ("secret", secret)]


def _qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG (presentation attributes only: no inline style)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode().split("?>", 1)[-1].strip()


def _form(request: Request, status: int = 200, **values: Any) -> Response:
    values.setdefault("error", None)
    values.setdefault("secret", None)
    return form_page(request, "two_step.html", status, title=TITLE, action=here(request), **values)


def _setup_page(request: Request, username: str, secret: str, error: str | None = None) -> Response:
    auth = components_of(request)
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    return _form(
        request,
        400 if error else 200,
        error=error,
        secret=secret,
        spaced=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        uri=uri,
        qr=_qr_svg(uri),
        ticket=make_ticket(auth.settings.secret_key, username, _binding(secret)),
        username=username,
    )


@router.get(PATH)
async def two_step_form(request: Request) -> Response:
    components_of(request)
    return _form(request)


@router.post(PATH)
async def two_step(request: Request) -> Response:
    auth = components_of(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    if await form_forged(request, form.get("csrf", "")):
        expired = "This form has expired or did not come from this site; sign in again."
        return _form(request, 403, error=expired)
    if limited := await throttled(auth, request, "login"):
        return limited
    if form.get("step") == "confirm":
        return await _confirm(request, form)
    username = form.get("username", "")
    user = await auth.accounts.login(username, form.get("password", ""), form.get("totp"))
    await auth.audit.record(
        "login", success=user is not None, who=username[:100], address=client_ip(request)
    )
    if user is None:
        return _form(request, error=WRONG)
    doc = await auth.store.user(user.username)
    if doc and doc.get("totp"):
        return page(request, "message.html", title=TITLE, message="Two-step sign-in is already on.")
    return _setup_page(request, user.username, pyotp.random_base32())


async def _confirm(request: Request, form: dict[str, str]) -> Response:
    auth = components_of(request)
    secret = form.get("secret", "")
    ticket = read_ticket(auth.settings.secret_key, form.get("ticket", ""), _binding(secret))
    if ticket is None:
        return _form(request, error="This page has expired; sign in again.")
    code = "".join(form.get("code", "").split())
    if not pyotp.TOTP(secret).verify(code, valid_window=1):
        wrong = "The code is not right: enter the 6 digits your app shows now."
        return _setup_page(request, ticket.username, secret, wrong)
    if not await auth.store.use_once("two-step", ticket.nonce, ticket.expires_at):
        return _form(request, error="This page was already used; sign in again.")
    await auth.accounts.enable_totp(ticket.username, secret)
    await auth.audit.record("second-factor-on", success=True, who=ticket.username)
    return page(
        request,
        "message.html",
        title="Two-step sign-in is on",
        message="From now on, sign in with your password and a code from your app.",
        portal_url=portal_url(auth.settings),
    )
