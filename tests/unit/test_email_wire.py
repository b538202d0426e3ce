"""The SMTP wire policy writes exactly the bytes compat32 writes, only faster."""

from __future__ import annotations

import email
from email.header import Header
from email.policy import compat32

import pytest

from fhir_server.notifications.channels.base import Rendered
from fhir_server.notifications.channels.email import _WIRE, build_email

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


def test_a_whole_message_flattens_as_compat32() -> None:
    rendered = Rendered(
        message_id="c-1",
        destination="ann@example.org",
        subject="Votre rendez-vous du vendredi 27 novembre 2026 est confirmé",
        text="Bonjour Ann,\nà vendredi.",
        html="<p>Bonjour Ann,</p>",
        short="RDV vendredi",
        link="https://clinic.example/appointments/a1",
        calendar=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        calendar_method="REQUEST",
    )
    mail = build_email(rendered, "clinic@example.org")
    wire = mail.as_bytes(policy=_WIRE)
    assert wire == mail.as_bytes(policy=_COMPAT32_CRLF)
    parsed = email.message_from_bytes(wire)
    kinds = [part.get_content_type() for part in parsed.walk()]
    assert kinds == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    assert parsed.get_payload(1).get_payload(decode=True) == rendered.calendar
