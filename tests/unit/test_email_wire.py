"""The mail goes out in exactly the bytes compat32 writes for the same MIME message, only faster."""

from __future__ import annotations

import email
import re
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_server.notifications.channels.base import Rendered
from fhir_server.notifications.channels.email import _WIRE, FILE, build_email

_COMPAT32_CRLF = compat32.clone(linesep="\r\n")


@pytest.mark.parametrize(
    "value",
    [
        'text/plain; charset="utf-8"',
        'multipart/alternative; boundary="=_alt_0123456789abcdef"',
        "<c-1@fhir-server>",
        "Sat, 05 Dec 2026 15:30:54 -0000",
        "x" * 60,
        "x" * 66,  # exactly at the line limit with "Subject: "
        "x" * 67,  # one past it
        "a " * 40,
        "two  spaces",
        " leading",
        "trailing ",
        "tab\there",
        "line\nbreak",
        "line\r\n continued",
        "accentué",
        "",
        Header("Rendez-vous confirmé pour vendredi 27 novembre", "utf-8").encode(),
        "word, " * 20,
    ],
)
def test_headers_fold_as_compat32(value: str) -> None:
    assert _WIRE.fold_binary("Subject", value) == _COMPAT32_CRLF.fold_binary("Subject", value)


def _reference(rendered: Rendered, sender: str, token: str, date: str) -> Message:
    """The message as the compat32 MIME classes build it (the former implementation)."""
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
    mail["Date"] = date
    return mail


def _rendered(subject: str, text: str, calendar: bytes | None, method: str = "REQUEST") -> Rendered:
    return Rendered(
        message_id="c-1",
        destination="ann@example.org",
        subject=subject,
        text=text,
        html=f"<p>{text}</p>",
        short="RDV vendredi",
        link="https://clinic.example/appointments/a1",
        calendar=calendar,
        calendar_method=method if calendar is not None else None,
    )


def _same_as_compat32(rendered: Rendered, sender: str = "clinic@example.org") -> bytes:
    """Our bytes for the wire (CRLF) and for an outbox file (LF), each equal to compat32's
    flattening of the reference message with the same boundary token and date."""
    for policy, reference_policy in ((FILE, compat32), (_WIRE, _COMPAT32_CRLF)):
        wire = build_email(rendered, sender, policy=policy).data
        token = re.search(rb'boundary="=_(?:mix|alt)_([0-9a-f]{16})"', wire)
        date = re.search(rb"\nDate: ([^\r\n]+)\r?\n", wire)
        assert token is not None and date is not None
        reference = _reference(rendered, sender, token[1].decode(), date[1].decode())
        assert wire == reference.as_bytes(policy=reference_policy)
    return wire


@pytest.mark.parametrize(
    "subject",
    [
        "Votre rendez-vous du vendredi 27 novembre 2026 est confirmé",
        "Your appointment is booked: Monday 7 December 2026, 10:00 (Europe/Paris)",
        "Short",
        "x" * 50,  # one encoded word that fits beside the name
        "x" * 57,
        "x" * 200,
        "é" * 30,  # base64 is shorter
        "ab" + "😀" * 30,
        "",
        "two\nlines",
        "=?utf-8?q?looks_encoded?=",
        "under_score =?and? equals=",
    ],
)
@pytest.mark.parametrize("calendar", [b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", None])
def test_a_whole_message_is_what_compat32_writes(subject: str, calendar: bytes | None) -> None:
    _same_as_compat32(_rendered(subject, "Bonjour Ann,\nà vendredi.", calendar))


@settings(max_examples=150, deadline=None, database=None)
@given(st.text(st.characters(exclude_categories=("Cs",))), st.text())
def test_any_subject_and_text_are_what_compat32_writes(subject: str, text: str) -> None:
    _same_as_compat32(_rendered(subject, text, "SUMMARY:é".encode(), "CANCEL"))


def test_odd_addresses_are_what_compat32_writes() -> None:
    rendered = _rendered("x", "y", None)
    for destination in ("josé@example.fr", "a" * 90 + "@example.org", "a,b@example.org"):
        _same_as_compat32(
            Rendered(**{**rendered.__dict__, "destination": destination}), "Clinic <c@x.org>"
        )


def test_the_parts_read_back() -> None:
    rendered = _rendered(
        "Votre rendez-vous du vendredi 27 novembre 2026 est confirmé",
        "Bonjour Ann,\nà vendredi.",
        b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
    )
    parsed = email.message_from_bytes(_same_as_compat32(rendered), policy=email.policy.default)
    kinds = [part.get_content_type() for part in parsed.walk()]
    assert kinds == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    # compat32 leaves "Subject: " alone on its line when the first word does not fit,
    # which a modern parser reads as a leading space
    assert parsed["Subject"].strip() == rendered.subject
    assert parsed.get_payload(1).get_payload(decode=True) == rendered.calendar
    assert parsed.get_payload(0).get_payload(0).get_content() == rendered.text
