"""The admin console's SMART apps and signing keys (`$apps`, `$register-app`,
`$rotate-app-credentials`, `$remove-app`, `$signing-keys`, `$rotate-signing-key`).

A generated client secret is shown once, on the page that answers the
registration or rotation (never stored by the console). Replacing
credentials, removing an app and rotating the signing key are confirmed on a
second page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.clinic.admin_support import (
    confirmation,
    confirmed,
    groups,
    listing,
    not_found,
    run,
    single,
    text,
)
from fhir_server.ui.clinic.roles import Admin
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage

router = APIRouter()
KINDS = ("public", "confidential", "backend")
_FIELDS = ("name", "type", "scope", "redirect_uris", "jwks", "jwks_uri")


async def _apps_page(
    page: SignedInPage, errors: list[FieldError] | None = None, **form: str
) -> Response:
    return page.render(
        "clinic/admin_apps.html",
        title=page._("SMART apps"),
        status=400 if errors else 200,
        errors=errors,
        apps=await listing(page.api, "$apps", "app"),
        kinds=KINDS,
        form={**dict.fromkeys(_FIELDS, ""), "type": "public", **form},
        done=page.request.query_params.get("done"),
    )


@router.get("/admin/apps")
async def apps(page: Admin) -> Response:
    return await _apps_page(page)


def _secret_page(page: SignedInPage, answer: dict[str, Any], title: str) -> Response:
    [app] = groups(answer, "app")
    return page.render(
        "clinic/admin_app_secret.html",
        title=title,
        app=app,
        secret=single(answer, "clientSecret"),
    )


@router.post("/admin/apps")
async def register(page: Admin, form: CheckedForm) -> Response:
    given = {k: text(form, k) for k in _FIELDS}
    missing = [
        FieldError(page._(message), field)
        for field, message in (("name", "Enter the app's name."), ("scope", "Enter its scopes."))
        if not given[field]
    ]
    if missing:
        return await _apps_page(page, missing, **given)
    answer, errors = await run(
        page,
        "$register-app",
        name=given["name"],
        type=given["type"],
        scope=given["scope"],
        redirectUri=given["redirect_uris"].split(),
        jwks=given["jwks"],
        jwksUri=given["jwks_uri"],
    )
    if errors:
        return await _apps_page(page, errors, **given)
    return _secret_page(page, answer, page._("App registered"))


async def _app(page: SignedInPage, client_id: str) -> dict[str, Any] | None:
    found = await listing(page.api, "$apps", "app")
    return next((a for a in found if a["clientId"] == client_id), None)


def _app_page(
    page: SignedInPage, app: dict[str, Any], errors: list[FieldError] | None = None
) -> Response:
    uris = app.get("redirectUri") or []
    return page.render(
        "clinic/admin_app.html",
        title=page._("App {name}").replace("{name}", app["name"]),
        status=400 if errors else 200,
        errors=errors,
        app=app,
        redirect_uris=uris if isinstance(uris, list) else [uris],
    )


@router.get("/admin/apps/{client_id}")
async def app(page: Admin, client_id: str) -> Response:
    found = await _app(page, client_id)
    if found is None:
        return _not_found(page)
    return _app_page(page, found)


def _not_found(page: SignedInPage) -> Response:
    return not_found(
        page, page._("App not found"), page._("There is no such app. Nothing was changed.")
    )


@router.post("/admin/apps/{client_id}")
async def change(page: Admin, client_id: str, form: CheckedForm) -> Response:
    found = await _app(page, client_id)
    if found is None:
        return _not_found(page)
    action = text(form, "action")
    here = page.url(f"/admin/apps/{client_id}")
    keys = {"jwks": text(form, "jwks"), "jwks_uri": text(form, "jwks_uri")}
    if action not in ("rotate", "remove"):
        return _app_page(page, found, [FieldError(page._("Choose what to change."), None)])
    if not confirmed(form):
        asks = {
            "rotate": (
                page._("Replace this app's credentials?"),
                page._("The app stops working until it is given the new credentials."),
                page._("Replace credentials"),
            ),
            "remove": (
                page._("Remove this app?"),
                page._("Everyone signed in through it is signed out, and it cannot be used."),
                page._("Remove app"),
            ),
        }
        title, message, button = asks[action]
        return confirmation(
            page,
            title=title,
            message=message,
            action=here,
            fields={"action": action, **keys},
            button=button,
            back=here,
        )
    if action == "remove":
        _answer, errors = await run(page, "$remove-app", clientId=client_id)
        if errors:
            return _app_page(page, found, errors)
        return page.redirect(page.url("/admin/apps", done="removed"))
    answer, errors = await run(
        page, "$rotate-app-credentials", clientId=client_id,
        jwks=keys["jwks"], jwksUri=keys["jwks_uri"],
    )  # fmt: skip
    if errors:
        return _app_page(page, found, errors)
    return _secret_page(page, answer, page._("Credentials replaced"))


# -- signing keys ------------------------------------------------------------------------


@router.get("/admin/keys")
async def keys(page: Admin) -> Response:
    return page.render(
        "clinic/admin_keys.html",
        title=page._("Signing keys"),
        keys=await listing(page.api, "$signing-keys", "key"),
        done=page.request.query_params.get("done"),
    )


@router.post("/admin/keys")
async def rotate_key(page: Admin, form: CheckedForm) -> Response:
    here = page.url("/admin/keys")
    if not confirmed(form):
        return confirmation(
            page,
            title=page._("Rotate the signing key?"),
            message=page._(
                "New tokens are signed with a new key; tokens already issued keep working "
                "until they expire."
            ),
            action=here,
            fields={},
            button=page._("Rotate signing key"),
            back=here,
        )
    _answer, errors = await run(page, "$rotate-signing-key")
    if errors:
        return page.render(
            "clinic/admin_keys.html",
            title=page._("Signing keys"),
            status=400,
            errors=errors,
            keys=await listing(page.api, "$signing-keys", "key"),
            done=None,
        )
    return page.redirect(page.url("/admin/keys", done="rotated"))
