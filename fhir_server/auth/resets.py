"""Password reset by e-mail: a single-use token, stored hashed, valid 30 minutes.

The request answers the same whether or not the address belongs to an account;
the mail goes out through the notifications e-mail channel (the SMTP settings).
Setting a new password revokes the account's refresh tokens.
"""

from __future__ import annotations

import logging
import secrets
import time
from email.message import EmailMessage

import anyio.to_thread

from fhir_server.auth.users import AccountError, Accounts, password_problem
from fhir_server.notifications.channels.base import DeliveryError
from fhir_server.notifications.channels.email import mail_of, send_email
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

log = logging.getLogger("fhir_server.auth.resets")
RESET_SECONDS = 30 * 60


def send_mail(settings: Settings, to: str, subject: str, text: str) -> None:
    """Send one plain-text message through the notifications e-mail channel (blocking)."""
    if not settings.smtp_host:
        log.warning("no SMTP host configured; password-reset mail not sent")
        return
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.smtp_from, to, subject
    message.set_content(text)
    send_email(settings, mail_of(message))


class PasswordResets:
    def __init__(self, store: AuthStore, accounts: Accounts, settings: Settings) -> None:
        self.store = store
        self.accounts = accounts
        self.settings = settings

    async def request(self, email: str, confirm_url: str) -> None:
        doc = await self.store.user_by_email(email.strip()) if email.strip() else None
        if doc is None or doc.get("disabled"):
            return
        token = secrets.token_urlsafe(32)
        await self.store.save_reset(
            token, {"username": doc["_id"], "expires_at": int(time.time()) + RESET_SECONDS}
        )
        text = (
            "Someone asked to reset the password of your clinic account.\n"
            "To choose a new password, open this link within 30 minutes:\n"
            f"{confirm_url}?token={token}\n"
            "If it was not you, ignore this message."
        )
        try:
            await anyio.to_thread.run_sync(
                send_mail, self.settings, doc["email"], "Reset your password", text
            )
        except DeliveryError:
            log.warning("password-reset mail could not be sent")

    async def confirm(self, token: str, password: str) -> None:
        problem = password_problem(password)
        if problem:
            raise AccountError(problem)
        doc = await self.store.claim_reset(token) if token else None
        if doc is None or doc["expires_at"] < time.time():
            raise AccountError("This link is not valid any more; ask for a new one.")
        await self.accounts.set_password(doc["username"], password)
