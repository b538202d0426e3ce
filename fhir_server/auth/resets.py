"""Password reset by e-mail: a single-use token, stored hashed, valid 30 minutes.

The request answers the same whether or not the address belongs to an account;
the mail goes out through the notifications e-mail channel (the SMTP settings).
Setting a new password revokes the account's refresh tokens. An admin's
invitation (`invite`) is the same token, valid a week, in a welcoming mail:
the invited user chooses their first password on the same confirm page.
"""

from __future__ import annotations

import logging
import secrets
import time
from email.message import EmailMessage
from typing import Any

import anyio.to_thread

from fhir_server.auth.users import AccountError, Accounts, password_problem
from fhir_server.notifications.channels.base import DeliveryError
from fhir_server.notifications.channels.email import mail_of, send_email
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

log = logging.getLogger("fhir_server.auth.resets")
RESET_SECONDS = 30 * 60
INVITE_SECONDS = 7 * 24 * 3600


def send_mail(settings: Settings, to: str, subject: str, text: str) -> bool:
    """Send one plain-text message through the notifications e-mail channel (blocking);
    False when no mail server is configured."""
    if not settings.smtp_host:
        log.warning("no SMTP host configured; account mail not sent")
        return False
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.smtp_from, to, subject
    message.set_content(text)
    send_email(settings, mail_of(message))
    return True


class PasswordResets:
    def __init__(self, store: AuthStore, accounts: Accounts, settings: Settings) -> None:
        self.store = store
        self.accounts = accounts
        self.settings = settings

    async def request(self, email: str, confirm_url: str) -> None:
        doc = await self.store.user_by_email(email.strip()) if email.strip() else None
        if doc is None or doc.get("disabled"):
            return
        text = (
            "Someone asked to reset the password of your clinic account.\n"
            "To choose a new password, open this link within 30 minutes:\n"
            "{link}\n"
            "If it was not you, ignore this message."
        )
        await self._mail(doc, confirm_url, RESET_SECONDS, "Reset your password", text)

    async def invite(self, username: str, confirm_url: str) -> bool:
        """Mail an invited account's owner the link to choose their password; False when
        it could not be handed to a mail server (the account stays: invite it again)."""
        doc = await self.store.user(username)
        if doc is None or not doc.get("email"):
            raise AccountError("This account has no e-mail address to invite.")
        text = (
            f"You have been given an account at the clinic, user name {doc['_id']}.\n"
            "To choose your password, open this link within 7 days:\n"
            "{link}\n"
            "If you did not expect this, ignore this message."
        )
        return await self._mail(doc, confirm_url, INVITE_SECONDS, "Your clinic account", text)

    async def _mail(
        self, doc: dict[str, Any], confirm_url: str, seconds: int, subject: str, text: str
    ) -> bool:
        """Store a single-use link for the account and mail it (`{link}` in `text`)."""
        token = secrets.token_urlsafe(32)
        await self.store.save_reset(
            token, {"username": doc["_id"], "expires_at": int(time.time()) + seconds}
        )
        body = text.replace("{link}", f"{confirm_url}?token={token}")
        try:
            return await anyio.to_thread.run_sync(
                send_mail, self.settings, doc["email"], subject, body
            )
        except DeliveryError:
            log.warning("account mail could not be sent")
            return False

    async def confirm(self, token: str, password: str) -> None:
        problem = password_problem(password)
        if problem:
            raise AccountError(problem)
        doc = await self.store.claim_reset(token) if token else None
        if doc is None or doc["expires_at"] < time.time():
            raise AccountError("This link is not valid any more; ask for a new one.")
        await self.accounts.set_password(doc["username"], password)
