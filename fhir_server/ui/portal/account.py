"""Account pages: the portal hands these over to the authorization server's own pages.

Registering, resetting a password and two-step sign-in are the
authorization server's business (it owns the accounts; the portal only ever
holds a token): the portal links there and the pages lead back.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.client import site_root
from fhir_server.ui.web import Page, SignedIn, Visitor

router = APIRouter()


def _auth_page(page: Page, path: str) -> str:
    """An authorization server page, in the portal's language (OpenID Connect ui_locales)."""
    return f"{site_root(page.settings)}/auth/{path}?{urlencode({'ui_locales': page.lang})}"


@router.get("/register")
async def register(page: Visitor) -> Response:
    return page.redirect(_auth_page(page, "register"))


@router.get("/forgot-password")
async def forgot_password(page: Visitor) -> Response:
    return page.redirect(_auth_page(page, "password-reset"))


@router.get("/account")
async def account(page: SignedIn) -> Response:
    return page.render(
        "portal/account.html",
        title=page._("Your account"),
        reset=_auth_page(page, "password-reset"),
        manage=_auth_page(page, "manage"),
        two_step=_auth_page(page, "two-step"),
    )
