"""User accounts: patients, practitioners, front desk and admins (`auth.roles`),
each linked to a FHIR resource.

Passwords are argon2id hashes (argon2-cffi) at the cost `password_hashing`
names; hashing runs in a worker thread so it never blocks the event loop. An
account that fails `login_max_failures` times in a row is locked for
`login_lockout` seconds; the failure counter is kept in the store so every
replica sees it.

Disabling an account (the admin's `change`, the operator's `disable`) ends its
sessions and closes the calendar feed of its linked resource (`calendar_feeds`)
in the same step: the feed's URL belongs to the Patient or Practitioner, not
to the login, and whoever holds it would otherwise keep reading the
appointments. Enabling the account again does not reopen it: its owner asks
for a new URL, so a URL that leaked with the account never comes back to
life. The feed route also refuses a feed whose resource has accounts that are
all disabled (`AuthStore.only_disabled_accounts`), which covers a feed issued
while the account was off or a step cut short between the two writes.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import pyotp
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from fhir_server.auth.roles import LEGACY, ROLES
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.calendar_feeds import CalendarFeeds
from fhir_server.store.resources import ResourceStore

MIN_LENGTH = 12
HASHING = {
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    "cheapest-for-tests": profiles.CHEAPEST,
}


class AccountError(ValueError):
    """A request about an account that cannot be honoured; the message is safe to show."""


class NotRegistered(AccountError):
    """The account or client a request names does not exist."""


@cache
def common_passwords() -> frozenset[str]:
    path = Path(__file__).parent / "data" / "common-passwords.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(x.strip().lower() for x in lines if x.strip() and not x.startswith("#"))


def username_problem(username: str) -> str | None:
    """Why a new user name is refused, or None when it is acceptable."""
    if not username or len(username) > 100 or not username.isprintable():
        return "The user name must be 1 to 100 printable characters."
    return None


def password_problem(password: str, username: str = "") -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"The password must have at least {MIN_LENGTH} characters."
    if password.lower() in common_passwords():
        return "This password is too common; choose another."
    if username and username.lower() in password.lower():
        return "The password must not contain the user name."
    return None


@cache
def hasher(profile: str) -> PasswordHasher:
    return PasswordHasher.from_parameters(HASHING[profile])


@cache
def dummy_hash(profile: str) -> str:
    """Checked instead of a real hash when there is no usable account, so a refusal
    costs what a real check does (made once per process, when auth starts)."""
    return hasher(profile).hash("timing-equaliser-not-a-password")


async def hash_secret(secret: str, settings: Settings) -> str:
    return await anyio.to_thread.run_sync(hasher(settings.password_hashing).hash, secret)


def verify_secret(hashed: str | None, secret: str) -> bool:
    """Constant-time check of a secret against its argon2 hash (synchronous); the cost is
    the one the hash records, whatever `password_hashing` says now."""
    if not hashed:
        return False
    try:
        return hasher("rfc9106-low-memory").verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class User:
    username: str
    role: str
    fhir_user: str | None
    email: str | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> User:
        return cls(doc["_id"], doc["role"], doc.get("fhir_user"), doc.get("email"))

    @property
    def patient_id(self) -> str | None:
        if self.fhir_user and self.fhir_user.startswith("Patient/"):
            return self.fhir_user.split("/", 1)[1]
        return None


@dataclass(frozen=True)
class Changed:
    """An admin's change done: the account as it is now, and whether disabling it closed
    its resource's calendar feed (the audit event says so)."""

    user: User
    feed_closed: bool = False


class Accounts:
    def __init__(self, store: AuthStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def add(
        self,
        username: str,
        password: str,
        role: str,
        fhir_user: str | None = None,
        email: str | None = None,
    ) -> User:
        _check_role(role, fhir_user)
        problem = username_problem(username) or password_problem(password, username)
        if problem:
            raise AccountError(problem)
        return await self._insert(
            username, await hash_secret(password, self.settings), role, fhir_user, email
        )

    async def invite(
        self, username: str, role: str, email: str, fhir_user: str | None = None
    ) -> User:
        """An account whose owner sets the password from an e-mailed link
        (`PasswordResets.invite`); until then no password opens it (its hash is of a
        random secret nobody holds, so a sign-in takes as long as for anyone)."""
        _check_role(role, fhir_user)
        problem = username_problem(username) or email_problem(email)
        if problem:
            raise AccountError(problem)
        unknown = await hash_secret(secrets.token_urlsafe(32), self.settings)
        return await self._insert(username, unknown, role, fhir_user, email)

    async def _insert(
        self, username: str, hashed: str, role: str, fhir_user: str | None, email: str | None
    ) -> User:
        doc = {
            "_id": username.lower(),
            "role": role,
            "fhir_user": fhir_user,
            "email": email.lower() if email else None,
            "password": hashed,
            "disabled": False,
            "failures": 0,
            "locked_until": 0,
            "totp": None,
            "created": int(time.time()),
        }
        if not await self.store.add_user(doc):
            raise AccountError("That user name is taken.")
        return User.of(doc)

    async def login(self, username: str, password: str, totp: str | None = None) -> User | None:
        """The user when the credentials are right and the account may log in now.

        Every refusal does the same argon2 work as a real check (against a dummy
        hash when the name is unknown, disabled or locked), so the time taken does
        not tell whether a user name exists. Failures are counted atomically in the
        store, so parallel guesses cannot slip past the lockout.
        """
        doc = await self.store.user(username)
        now = int(time.time())
        usable = doc is not None and not doc.get("disabled") and doc.get("locked_until", 0) <= now
        dummy = await anyio.to_thread.run_sync(dummy_hash, self.settings.password_hashing)
        hashed = doc.get("password") if doc is not None and usable else dummy
        good = await anyio.to_thread.run_sync(verify_secret, hashed, password)
        if doc is None or not usable:
            return None
        if good and doc.get("totp"):
            good = bool(totp) and pyotp.TOTP(doc["totp"]).verify(totp or "", valid_window=1)
        if not good:
            locked_until = now + self.settings.login_lockout
            await self.store.count_failure(
                doc["_id"], self.settings.login_max_failures, locked_until
            )
            return None
        if doc.get("failures"):
            await self.store.update_user(doc["_id"], {"failures": 0})
        return User.of(doc)

    async def get(self, username: str) -> User | None:
        doc = await self.store.user(username)
        return None if doc is None or doc.get("disabled") else User.of(doc)

    async def disable(self, username: str) -> bool:
        """Stop an account signing in (the operator's command): its sessions end and its
        resource's calendar feed closes. False when there is no such account."""
        doc = await self.store.user(username)
        if doc is None or not await self.store.update_user(doc["_id"], {"disabled": True}):
            return False
        await self.store.revoke_user_tokens(doc["_id"])
        await self._close_feed(doc)
        return True

    async def change(
        self,
        username: str,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        second_factor_off: bool = False,
    ) -> Changed:
        """Change an account as an admin does: its role, whether it may sign in, or turn its
        second factor off (a lost phone). Its sessions end, so no token carries the old
        state, and disabling it closes its resource's calendar feed; the last admin who can
        sign in is never demoted or disabled."""
        doc = await self.store.user(username)
        if doc is None:
            raise NotRegistered(f"There is no user {username[:100]!r}.")
        changes: dict[str, Any] = {}
        if role is not None:
            _check_role(role, doc.get("fhir_user"))
            changes["role"] = role
        if disabled is not None:
            changes["disabled"] = disabled
        if second_factor_off:
            changes["totp"] = None
        if not changes:
            raise AccountError("Nothing to change: give a role, disabled, or the second factor.")
        if await self._last_admin(doc, changes):
            raise AccountError("This is the last admin who can sign in; keep it an admin.")
        await self.store.update_user(doc["_id"], changes)
        await self.store.revoke_user_tokens(doc["_id"])
        closed = disabled is True and await self._close_feed(doc)
        return Changed(User.of({**doc, **changes}), feed_closed=closed)

    async def _close_feed(self, doc: dict[str, Any]) -> bool:
        """Close the calendar feed of the account's linked resource; False when it had none."""
        owner = doc.get("fhir_user")
        return bool(owner) and await CalendarFeeds(self.store.database).revoke(str(owner))

    async def _last_admin(self, doc: dict[str, Any], changes: dict[str, Any]) -> bool:
        """Whether `changes` take away the only enabled admin account."""
        if not _signs_in_as_admin(doc) or _signs_in_as_admin({**doc, **changes}):
            return False
        others = [d for d in await self.store.list_users() if d["_id"] != doc["_id"]]
        return not any(_signs_in_as_admin(d) for d in others)

    async def set_password(self, username: str, password: str) -> None:
        problem = password_problem(password, username)
        if problem:
            raise AccountError(problem)
        await self.store.update_user(
            username,
            {
                "password": await hash_secret(password, self.settings),
                "failures": 0,
                "locked_until": 0,
            },
        )
        await self.store.revoke_user_tokens(username.lower())

    async def enable_totp(self, username: str, secret: str | None = None) -> str:
        """Turn on the second factor; the secret to put in an authenticator app (a new one,
        or `secret` once the user proved their app holds it)."""
        secret = secret or pyotp.random_base32()
        if not await self.store.update_user(username, {"totp": secret}):
            raise AccountError("No such user.")
        return secret

    async def migrate_roles(self) -> list[str]:
        """Give every account one of the four role words; the user names changed.

        A `staff` account, and a practitioner account not linked to a
        Practitioner (it acted as staff in booking), become `frontdesk`; admin,
        patient and linked practitioner accounts keep their role. The changed
        accounts' sessions end, so no token carries the old role.
        """
        changed = []
        for doc in await self.store.list_users():
            role = migrated_role(doc)
            if role != doc.get("role"):
                await self.store.update_user(doc["_id"], {"role": role})
                await self.store.revoke_user_tokens(doc["_id"])
                changed.append(str(doc["_id"]))
        return changed

    async def list(self) -> list[dict[str, Any]]:
        return [
            {
                "username": d["_id"],
                "role": d["role"],
                "fhir_user": d.get("fhir_user"),
                "email": d.get("email"),
                "disabled": bool(d.get("disabled")),
                "second_factor": bool(d.get("totp")),
            }
            for d in await self.store.list_users()
        ]


def _check_role(role: str, fhir_user: str | None) -> None:
    if role not in ROLES:
        raise AccountError(f"The role must be one of {', '.join(ROLES)}.")
    if role == "practitioner" and migrated_role({"role": role, "fhir_user": fhir_user}) != role:
        raise AccountError("A practitioner account must be linked to a Practitioner/<id>.")


def _signs_in_as_admin(doc: dict[str, Any]) -> bool:
    return doc.get("role") == "admin" and not doc.get("disabled")


FHIR_USER_TYPES = ("Patient", "Practitioner", "PractitionerRole", "RelatedPerson")


async def check_fhir_user(resources: ResourceStore, reference: str, name: str) -> None:
    """An account's linked resource (given as `name`) must be `Type/id` of a resource that
    is there."""
    kind, _, rid = reference.partition("/")
    if kind not in FHIR_USER_TYPES or not rid or "/" in rid:
        raise AccountError(f"{name} must be Type/id with Type one of {', '.join(FHIR_USER_TYPES)}.")
    found = await resources.current(kind, rid)
    if found is None or found.deleted:
        raise AccountError(f"{reference[:100]} does not exist; create it first.")


def email_problem(email: str) -> str | None:
    """Why an address cannot receive the account's mail, or None (a light check: the mail
    itself is the real one)."""
    local, at, domain = email.partition("@")
    if not (at and local and "." in domain) or len(email) > 254 or not email.isprintable():
        return "The e-mail address is not valid."
    if " " in email:
        return "The e-mail address is not valid."
    return None


def migrated_role(doc: dict[str, Any]) -> str:
    """The role word an account of an earlier version has now (see `migrate_roles`)."""
    role = str(doc.get("role") or "")
    role = LEGACY.get(role, role)
    linked = str(doc.get("fhir_user") or "").startswith(("Practitioner/", "PractitionerRole/"))
    if role == "practitioner" and not linked:
        return "frontdesk"
    return role if role in ROLES else "frontdesk"
