"""What every `fhir-server` command shares: settings checked once, errors in one line.

An operator who mistypes a variable, names a file that is not there, or runs
a command while the store is down reads one line that says what to fix,
never a traceback, whichever command it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import ValidationError

from fhir_server.fhir.errors import ServiceUnavailable
from fhir_server.settings import Settings
from fhir_server.store.embedded import EmbeddedStoreError

STORE_UNREACHABLE = (
    "The data store is not reachable. Check FHIR_MONGODB_URI, or unset it and start the "
    "server with 'fhir-server serve' (which runs the embedded store)."
)


def fail(message: str) -> NoReturn:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def load_settings(**overrides: Any) -> Settings:
    """The settings, or exit naming each invalid FHIR_* variable."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"FHIR_{'_'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"Invalid settings: {problems}")


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """An unreachable store, worded the same by every command."""
    try:
        yield
    except ServiceUnavailable:
        fail(STORE_UNREACHABLE)
    except EmbeddedStoreError as exc:
        fail(str(exc))


def production_warnings(settings: Settings) -> list[str]:
    """What a production start-up must shout about: settings that quietly lose messages."""
    if settings.environment != "production":
        return []
    found = []
    if not settings.smtp_host:
        found.append(
            "FHIR_SMTP_HOST is not set: no e-mail leaves this server (password resets, "
            f"confirmations, reminders pile up in {settings.data_dir / 'outbox'})."
        )
    if not settings.sms_base_url:
        found.append(f"FHIR_SMS_BASE_URL is not set: SMS go to {settings.data_dir / 'outbox'}.")
    return found


def warn_production(settings: Settings) -> None:
    for line in production_warnings(settings):
        typer.secho(f"WARNING: {line}", fg=typer.colors.YELLOW, bold=True, err=True)


def read_file(path: Path, option: str) -> bytes:
    """A file named on the command line, or exit saying which option and why."""
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"Cannot read {option} {path}: {exc.strerror or exc}.")
