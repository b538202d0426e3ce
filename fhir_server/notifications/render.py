"""Turning a message into text, HTML and a short line, in the recipient's language.

Templates live in `templates/<language>/` (Jinja2): `subject.txt.j2`,
`body.txt.j2`, `body.html.j2` (autoescaped), `short.txt.j2`. Times are shown
in the clinic's time zone. The short form (SMS, push) carries no reason or
clinical text, only what happened, when, and a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from fhir_server.store.clock import parse_instant

_TEMPLATES = Path(__file__).parent / "templates"

# Day and month names (CLDR wide forms), so dates read naturally in each language.
_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
    ),
    "fr": (
        ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
        (
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ),
    ),
}


_PARTS = (
    ("subject", "subject.txt.j2"),
    ("text", "body.txt.j2"),
    ("html", "body.html.j2"),
    ("short", "short.txt.j2"),
)


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # the templates ship with the package: no stat per message
    )


@lru_cache(maxsize=64)
def _language(requested: str) -> str:
    return requested if (_TEMPLATES / requested).is_dir() else "en"


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def local_time(instant: str | None, tz: ZoneInfo, language: str) -> str:
    """`Friday 27 November 2026, 09:00` in the clinic's zone (and its zone name)."""
    if not instant:
        return ""
    moment: datetime = parse_instant(instant).astimezone(tz)
    days, months = _NAMES.get(language, _NAMES["en"])
    return (
        f"{days[moment.weekday()]} {moment.day} {months[moment.month - 1]} {moment.year}, "
        f"{moment:%H:%M} ({tz.key})"
    )


@dataclass(frozen=True)
class View:
    """Everything a template may show."""

    event: str
    role: str  # patient | provider
    language: str
    recipient_name: str
    when: str
    previous_when: str
    practitioner: str
    location: str
    description: str
    cancelled_by: str
    hours_before: int
    link: str


def render(view: View) -> dict[str, str]:
    """subject, text, html and short for the view, in its language (English if unknown)."""
    language = _language(view.language)
    values: dict[str, Any] = {**view.__dict__, "language": language}
    env = _environment()
    return {
        part: env.get_template(f"{language}/{name}").render(values).strip() for part, name in _PARTS
    }
