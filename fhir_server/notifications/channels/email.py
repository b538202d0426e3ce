"""E-mail over SMTP: multipart text + HTML with an iCalendar invitation.

The Message-ID is derived from the Communication id, so if a crash ever made
a message go out twice, mail clients would still see one message.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import smtplib
import ssl
import threading
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formatdate
from typing import Any

from fhir_server.notifications.channels.base import DeliveryError, Rendered
from fhir_server.settings import Settings

# A header value compat32 writes unchanged when its line fits: printable ASCII
# words joined by single spaces (no encoding, no folding point is needed).
_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*")


class _Wire(Compat32):
    """compat32 with CRLF line ends (SMTP wants them; smtplib does not fix bare LF in
    bytes), writing a plain header that fits on its line directly: compat32 runs
    every header through `email.header.Header`'s folding, a third of flattening."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (
            isinstance(value, str)
            and self.max_line_length is not None
            and len(name) + 2 + len(value) <= self.max_line_length
            and _PLAIN_VALUE.fullmatch(value)
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_WIRE = _Wire(linesep="\r\n")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def build_email(rendered: Rendered, sender: str) -> Message:
    """multipart/mixed: (text | HTML alternatives) + the .ics, built with the compat32 classes.

    The policy-based `EmailMessage` API builds and flattens the same message
    several times slower; at worker throughput that matters. The boundaries are
    chosen here, not by the generator (which compiles a regex per message to
    search the parts for its random one): every part is base64 (the utf-8
    charset's body encoding) under fixed headers, so no line of a part contains
    `_`, and the two boundaries differ, so neither can occur in the text.
    """
    token = secrets.token_hex(8)
    body = MIMEMultipart("alternative", boundary=f"=_alt_{token}")
    body.attach(MIMEText(rendered.text, "plain", "utf-8"))
    body.attach(MIMEText(rendered.html, "html", "utf-8"))
    mail: Message = body
    if rendered.calendar is not None:
        mail = MIMEMultipart("mixed", boundary=f"=_mix_{token}")
        mail.attach(body)
        calendar = MIMEText(rendered.calendar.decode(), "calendar", "utf-8")
        calendar.set_param("method", rendered.calendar_method or "REQUEST")
        calendar.add_header("Content-Disposition", "attachment", filename="appointment.ics")
        mail.attach(calendar)
    mail["Subject"] = Header(rendered.subject, "utf-8").encode()
    mail["From"] = sender
    mail["To"] = rendered.destination
    mail["Message-ID"] = f"<{rendered.message_id}@fhir-server>"
    mail["Date"] = formatdate(localtime=False)
    return mail


def check_address(address: str) -> None:
    if not _ADDRESS.match(address):
        raise DeliveryError("The e-mail address is not valid.", permanent=True)


class _Connections:
    """One open SMTP connection per worker process, reused between messages.

    Opening a connection (TCP, EHLO, STARTTLS, AUTH) costs more than sending
    a small message; a connection the server closed is reopened once.
    """

    def __init__(self) -> None:
        self.client: smtplib.SMTP | None = None
        self.lock = threading.Lock()

    def open(self, settings: Settings) -> smtplib.SMTP:
        assert settings.smtp_host is not None
        if settings.smtp_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=10,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10)
        if settings.smtp_starttls and not settings.smtp_ssl:
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user and settings.smtp_password:
            client.login(settings.smtp_user, settings.smtp_password)
        return client

    def drop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.client.close()
        self.client = None

    def send(self, settings: Settings, mail: Message) -> None:
        with self.lock:
            for attempt in (1, 2):
                if self.client is None:
                    self.client = self.open(settings)
                try:
                    self.client.sendmail(
                        str(mail["From"]), [str(mail["To"])], mail.as_bytes(policy=_WIRE)
                    )
                    return
                except smtplib.SMTPServerDisconnected:
                    self.drop()
                    if attempt == 2:
                        raise
                except smtplib.SMTPRecipientsRefused:
                    with contextlib.suppress(smtplib.SMTPException, OSError):
                        self.client.rset()
                    raise
                except (smtplib.SMTPException, OSError):
                    self.drop()
                    raise


_connections = _Connections()


def send_email(settings: Settings, mail: Message) -> None:
    """Send through the configured SMTP server; raises DeliveryError."""
    try:
        _connections.send(settings, mail)
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryError(
            "The mail server refused the recipient address.", permanent=True
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"The mail server answered {exc.smtp_code}.", permanent=500 <= exc.smtp_code < 600
        ) from None
    except (smtplib.SMTPException, OSError):
        raise DeliveryError("The mail server could not be reached.") from None
