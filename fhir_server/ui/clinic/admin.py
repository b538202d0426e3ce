"""The admin console's start page and its accounts: list, invite, change role, disable or
enable, turn the second factor off (`$users`, `$invite-user`, `$change-user`).

Disabling and turning the second factor off are confirmed on a second page
(`admin_support.confirmation`); every change is audited by the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.clinic.admin_support import (
    confirmation,
    confirmed,
    listing,
    not_found,
    run,
    text,
)
from fhir_server.ui.clinic.roles import Admin, _
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage

router = APIRouter()

ROLES = ("practitioner", "frontdesk", "admin", "patient")


ROLE_NAMES = {
    "practitioner": _("Practitioner"),
    "frontdesk": _("Front desk"),
    "admin": _("Admin"),
    "patient": _("Patient"),
}
PARTS = (
    ("/admin/users", _("Users"), _("Invite staff, change roles, disable accounts.")),
    ("/admin/apps", _("SMART apps"), _("Register apps, replace their credentials, remove them.")),
    ("/admin/keys", _("Signing keys"), _("Rotate the key that signs access tokens.")),
    (
        "/admin/deliveries",
        _("Delivery problems"),
        _("Messages that failed or wait, and Subscriptions in error."),
    ),
    ("/admin/audit", _("Audit"), _("Who accessed a patient's data in a period.")),
)


@router.get("/admin")
async def admin_home(page: Admin) -> Response:
    parts = [(page.url(path), page._(name), page._(about)) for path, name, about in PARTS]
    return page.render("clinic/admin.html", title=page._("Administration"), parts=parts)


async def _users_page(
    page: SignedInPage, errors: list[FieldError] | None = None, status: int = 200, **form: str
) -> Response:
    users = await listing(page.api, "$users", "user")
    return page.render(
        "clinic/admin_users.html",
        title=page._("Users"),
        status=status,
        errors=errors,
        users=users,
        roles=[(r, page._(ROLE_NAMES[r])) for r in ROLES],
        role_names={r: page._(n) for r, n in ROLE_NAMES.items()},
        form={"username": "", "email": "", "role": "frontdesk", "fhir_user": "", **form},
        done=page.request.query_params.get("done"),
    )


@router.get("/admin/users")
async def users(page: Admin) -> Response:
    return await _users_page(page)


@router.post("/admin/users")
async def invite(page: Admin, form: CheckedForm) -> Response:
    given = {k: text(form, k) for k in ("username", "email", "role", "fhir_user")}
    missing = [
        FieldError(page._(message), field)
        for field, message in (
            ("username", "Enter a user name."),
            ("email", "Enter an e-mail address."),
        )
        if not given[field]
    ]
    if missing:
        return await _users_page(page, missing, 400, **given)
    _answer, errors = await run(
        page,
        "$invite-user",
        username=given["username"],
        email=given["email"],
        role=given["role"],
        fhirUser=given["fhir_user"],
    )
    if errors:
        return await _users_page(page, errors, 400, **given)
    return page.redirect(page.url("/admin/users", done="invited"))


async def _user(page: SignedInPage, username: str) -> dict[str, Any] | None:
    return next(
        (u for u in await listing(page.api, "$users", "user") if u["username"] == username), None
    )


def _not_found(page: SignedInPage) -> Response:
    return not_found(
        page, page._("User not found"), page._("There is no such user. Nothing was changed.")
    )


@router.get("/admin/users/{username}")
async def user(page: Admin, username: str) -> Response:
    found = await _user(page, username)
    if found is None:
        return _not_found(page)
    return _user_page(page, found)


def _user_page(
    page: SignedInPage, found: dict[str, Any], errors: list[FieldError] | None = None
) -> Response:
    return page.render(
        "clinic/admin_user.html",
        title=page._("User {name}").replace("{name}", found["username"]),
        status=400 if errors else 200,
        errors=errors,
        user=found,
        roles=[(r, page._(ROLE_NAMES[r])) for r in ROLES],
        role_name=page._(ROLE_NAMES.get(found["role"], found["role"])),
        done=page.request.query_params.get("done"),
    )


_ASKS = {
    "disable": (
        _("Disable this account?"),
        _("{name} will not be able to sign in, and is signed out everywhere now."),
        _("Disable account"),
    ),
    "reset-second-factor": (
        _("Turn two-step sign-in off?"),
        _("{name} will sign in with their password alone until they turn it on again."),
        _("Turn two-step sign-in off"),
    ),
}


@router.post("/admin/users/{username}")
async def change(page: Admin, username: str, form: CheckedForm) -> Response:
    found = await _user(page, username)
    if found is None:
        return _not_found(page)
    action = text(form, "action")
    here = page.url(f"/admin/users/{username}")
    if action in _ASKS and not confirmed(form):
        title, message, button = _ASKS[action]
        return confirmation(
            page,
            title=page._(title),
            message=page._(message).replace("{name}", username),
            action=here,
            fields={"action": action},
            button=page._(button),
            back=here,
        )
    choices: dict[str, dict[str, Any]] = {
        "role": {"role": text(form, "role")},
        "disable": {"disabled": True},
        "enable": {"disabled": False},
        "reset-second-factor": {"resetSecondFactor": True},
    }
    changes = choices.get(action, {})
    if not changes:
        return _user_page(page, found, [FieldError(page._("Choose what to change."), None)])
    _answer, errors = await run(page, "$change-user", username=username, **changes)
    if errors:
        return _user_page(page, found, errors)
    return page.redirect(page.url(f"/admin/users/{username}", done=action))
