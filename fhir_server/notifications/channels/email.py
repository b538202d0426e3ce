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
import string
import threading
from dataclasses import dataclass
from email import base64mime, quoprimime
from email.header import Header
from email.message import Message
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
FILE = _Wire(linesep="\n")  # an outbox file, as compat32 writes it by default
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")

# Characters quoted-printable header encoding writes as themselves ("_" for a space);
# every other octet takes three ("=XX"). RFC 2047 chrome: "=?utf-8?q?" + "?=".
_Q_PLAIN = frozenset((string.ascii_letters + string.digits + "-!*+/ ").encode())
_CHROME = len("=?utf-8?q??=")
_LINE = 78  # compat32's max_line_length


@dataclass(frozen=True)
class Mail:
    """A message as it goes on the wire (or into an outbox file), with its envelope."""

    sender: str
    recipient: str
    data: bytes


def _encoded_words(subject: str) -> list[str]:
    """The RFC 2047 words `Header(subject, "utf-8").encode()` writes for a one-line
    subject: quoted-printable unless base64 is shorter, split between characters so
    that the first word fits 78 columns and the others 77 (after a space). The
    standard library finds each split by re-encoding the growing word per character."""
    widths = [sum(1 if octet in _Q_PLAIN else 3 for octet in char.encode()) for char in subject]
    sizes = [len(char.encode()) for char in subject]
    use_base64 = (sum(sizes) + 2) // 3 * 4 < sum(widths)
    words: list[str] = []
    room, start, octets, width = _LINE - _CHROME, 0, 0, 0
    for index, (size, cost) in enumerate(zip(sizes, widths, strict=True)):
        grown = (octets + size + 2) // 3 * 4 if use_base64 else width + cost
        if grown > room:
            words.append(subject[start:index])
            room, start, octets, width = _LINE - 1 - _CHROME, index, 0, 0
        octets += size
        width += cost
    words.append(subject[start:])
    encode = base64mime.header_encode if use_base64 else quoprimime.header_encode
    return [encode(word.encode(), "utf-8") for word in words]


def _subject(subject: str, policy: _Wire) -> bytes:
    """The Subject header as compat32 writes `Header(subject, "utf-8").encode()`: the
    encoded words one per line, the first beside the name if it fits in 78 columns."""
    if subject.splitlines() != [subject]:  # empty, or with line breaks: the library's way
        return policy.fold_binary("Subject", Header(subject, "utf-8").encode())
    first, *more = _encoded_words(subject)
    gap = " " if len("Subject: ") + len(first) <= _LINE else f" {policy.linesep} "
    lines = [f"Subject:{gap}{first}", *(f" {word}" for word in more)]
    return (policy.linesep.join(lines) + policy.linesep).encode("ascii")


def _part(headers: list[bytes], body: bytes, nl: bytes) -> bytes:
    """Folded header lines, the blank line, the body."""
    return b"".join(headers) + nl + body


def _multipart(boundary: str, parts: list[bytes], nl: bytes) -> bytes:
    """The body of a multipart entity as compat32's generator writes it (no preamble)."""
    dash = f"--{boundary}".encode()
    return dash + nl + (nl + dash + nl).join(parts) + nl + dash + b"--" + nl


def _base64_part(data: bytes, headers: list[str], nl: bytes) -> bytes:
    """A `MIMEText(..., "utf-8")` part: its headers, then the body in base64 lines of 76."""
    lines = b"".join(header.encode() + nl for header in headers)
    return lines + nl + base64mime.body_encode(data, eol=nl.decode()).encode()


def _text_part(text: str, subtype: str, nl: bytes) -> bytes:
    headers = [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "MIME-Version: 1.0",
        "Content-Transfer-Encoding: base64",
    ]
    return _base64_part(text.encode(), headers, nl)


def build_email(rendered: Rendered, sender: str, *, policy: _Wire = _WIRE) -> Mail:
    """multipart/mixed: (text | HTML alternatives) + the .ics; multipart/alternative alone
    without a calendar.

    Written directly, in exactly the bytes the compat32 MIME classes flatten the
    same message to (`tests/unit/test_email_wire.py` compares them): building and
    flattening those objects cost half of a message's delivery. The boundaries
    are chosen here: every part is base64 under fixed headers, so no line of a
    part contains `_`, and the two boundaries differ, so neither occurs in the text.
    """
    nl = policy.linesep.encode()
    token = secrets.token_hex(8)
    alternative = f"=_alt_{token}"
    body = _multipart(
        alternative,
        [_text_part(rendered.text, "plain", nl), _text_part(rendered.html, "html", nl)],
        nl,
    )
    kind = f'multipart/alternative; boundary="{alternative}"'
    if rendered.calendar is not None:
        mixed = f"=_mix_{token}"
        inner = [policy.fold_binary("Content-Type", kind), b"MIME-Version: 1.0" + nl]
        method = rendered.calendar_method or "REQUEST"
        # set_param moves Content-Type after the headers MIMEText wrote
        calendar = _base64_part(
            rendered.calendar,
            [
                "MIME-Version: 1.0",
                "Content-Transfer-Encoding: base64",
                f'Content-Type: text/calendar; charset="utf-8"; method="{method}"',
                'Content-Disposition: attachment; filename="appointment.ics"',
            ],
            nl,
        )
        body = _multipart(mixed, [_part(inner, body, nl), calendar], nl)
        kind = f'multipart/mixed; boundary="{mixed}"'
    headers = [
        policy.fold_binary("Content-Type", kind),
        b"MIME-Version: 1.0" + nl,
        _subject(rendered.subject, policy),
        policy.fold_binary("From", sender),
        policy.fold_binary("To", rendered.destination),
        policy.fold_binary("Message-ID", f"<{rendered.message_id}@fhir-server>"),
        policy.fold_binary("Date", formatdate(localtime=False)),
    ]
    return Mail(sender, rendered.destination, _part(headers, body, nl))


def mail_of(message: Message) -> Mail:
    """A message built with the `email` package (a password reset), as the wire takes it."""
    return Mail(str(message["From"]), str(message["To"]), message.as_bytes(policy=_WIRE))


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

    def send(self, settings: Settings, mail: Mail) -> None:
        with self.lock:
            for attempt in (1, 2):
                if self.client is None:
                    self.client = self.open(settings)
                try:
                    self.client.sendmail(mail.sender, [mail.recipient], mail.data)
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


def send_email(settings: Settings, mail: Mail) -> None:
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
