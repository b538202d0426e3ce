"""`$users`, `$invite-user`, `$change-user`: the admin console's accounts (admins only).

An invited account gets no password: its owner chooses one from the e-mailed
link, on the password-reset page (`auth.resets`). A change of role, a
disabled account or a second factor turned off ends the account's sessions
(`auth.users.Accounts.change`); disabling also closes the calendar feed of the
account's Patient or Practitioner, and the `user-changed` event says so.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.urls import auth_base
from fhir_server.auth.users import check_fhir_user
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.admin_support import (
    Inputs,
    account_errors,
    admin_definition,
    group,
    method,
    operation,
    parameters,
    part,
    record,
)
from fhir_server.rest.operations.parameters import param
from fhir_server.rest.services import Operation, Services

_USER = param(
    "user",
    "out",
    "string",
    max_="*",
    doc="One account: parts username, role, fhirUser, email, disabled, secondFactor.",
)
USERS = admin_definition(
    "users", "Every user account, without its secrets.", [_USER], changes=False
)
INVITE = admin_definition(
    "invite-user",
    "Create an account and e-mail its owner a link (valid 7 days) to choose the password.",
    [
        param("username", "in", "string", min_=1, doc="Login name."),
        param("role", "in", "code", min_=1, doc="patient, practitioner, frontdesk or admin."),
        param("email", "in", "string", min_=1, doc="Where the link goes."),
        param("fhirUser", "in", "string", doc="The user's resource, e.g. Practitioner/1."),
        {**_USER, "max": "1"},
        param("mailed", "out", "boolean", min_=1, doc="Whether a mail server took the mail."),
    ],
    changes=True,
)
CHANGE = admin_definition(
    "change-user",
    "Change an account's role, disable or enable it, or turn its second factor off; its "
    "sessions end, and disabling closes its calendar feed. The last admin who can sign in "
    "stays one.",
    [
        param("username", "in", "string", min_=1, doc="Login name."),
        param("role", "in", "code", doc="The new role."),
        param(
            "disabled",
            "in",
            "boolean",
            doc="true stops the account signing in and closes its calendar feed.",
        ),
        param("resetSecondFactor", "in", "boolean", doc="true turns the second factor off."),
        {**_USER, "max": "1"},
    ],
    changes=True,
)


def user_part(view: dict[str, Any]) -> dict[str, Any]:
    return group(
        "user",
        part("username", view["username"]),
        part("role", view["role"]),
        part("fhirUser", view.get("fhir_user")),
        part("email", view.get("email")),
        part("disabled", bool(view.get("disabled"))),
        part("secondFactor", bool(view.get("second_factor"))),
    )


async def _view(auth: AuthComponents, username: str) -> dict[str, Any]:
    return next(u for u in await auth.accounts.list() if u["username"] == username)


async def users(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "users", changes=False)
    return parameters(*(user_part(u) for u in await auth.accounts.list()))


async def invite(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "invite-user", changes=True)
    given = Inputs(req)
    username = given.text("username", required=True) or ""
    role = given.text("role", required=True) or ""
    email = given.text("email", required=True) or ""
    fhir_user = given.text("fhirUser")
    with account_errors():
        if fhir_user:
            await check_fhir_user(services.store, fhir_user, "fhirUser")
        user = await auth.accounts.invite(username, role, email, fhir_user)
        mailed = await auth.resets.invite(
            user.username, f"{auth_base(auth.settings)}/password-reset/confirm"
        )
    await record(auth, req, "user-invited", ("account", user.username), f"role {user.role}")
    return parameters(user_part(await _view(auth, user.username)), part("mailed", mailed))


async def change(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "change-user", changes=True)
    given = Inputs(req)
    username = given.text("username", required=True) or ""
    role, disabled = given.text("role"), given.flag("disabled")
    reset = bool(given.flag("resetSecondFactor"))
    with account_errors():
        changed = await auth.accounts.change(
            username, role=role, disabled=disabled, second_factor_off=reset
        )
    user = changed.user
    done = [
        *([f"role {role}"] if role else []),
        *([f"disabled {str(disabled).lower()}"] if disabled is not None else []),
        *(["calendar feed closed"] if changed.feed_closed else []),
        *(["second factor off"] if reset else []),
    ]
    await record(auth, req, "user-changed", ("account", user.username), ", ".join(done) or None)
    return parameters(user_part(await _view(auth, user.username)))


def operations(auth: AuthComponents) -> list[Operation]:
    return [
        operation(auth, USERS, users),
        operation(auth, INVITE, invite),
        operation(auth, CHANGE, change),
    ]
