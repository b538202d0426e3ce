"""The default transport without SMTP/SMS settings: files in `<data dir>/outbox`.

A new user sees what would have been sent (`fhir-server outbox list`). Each
file is named after its Communication id, so writing it again replaces it
rather than adding a second copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from fhir_server.settings import Settings


def outbox_dir(settings: Settings) -> Path:
    return settings.data_dir / "outbox"


def _write(settings: Settings, name: str, data: bytes) -> Path:
    folder = outbox_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    partial = folder / f".{name}.partial"
    partial.write_bytes(data)
    os.replace(partial, target)  # atomic: a reader never sees half a message
    return target


def write_email(settings: Settings, message_id: str, mail: bytes) -> Path:
    return _write(settings, f"{message_id}.eml", mail)


def write_sms(settings: Settings, message_id: str, to: str, body: str) -> Path:
    return _write(settings, f"{message_id}.sms.txt", f"To: {to}\n\n{body}\n".encode())


@dataclass(frozen=True)
class OutboxEntry:
    path: Path
    written: datetime
    kind: str
    to: str
    subject: str


def _summary(path: Path) -> tuple[str, str]:
    """(to, subject) of an outbox file; an SMS shows its text as the subject."""
    if path.suffix == ".eml":
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        return str(mail.get("To", "")), " ".join(str(mail.get("Subject", "")).split())
    head, _, body = path.read_text(errors="replace").partition("\n\n")
    return head.removeprefix("To: ").strip(), body.strip()


def list_outbox(settings: Settings) -> list[OutboxEntry]:
    """Outbox files, oldest first."""
    folder = outbox_dir(settings)
    if not folder.exists():
        return []
    entries = []
    for path in sorted(folder.glob("*.*"), key=lambda p: p.stat().st_mtime):
        if path.name.startswith("."):
            continue
        to, subject = _summary(path)
        entries.append(
            OutboxEntry(
                path=path,
                written=datetime.fromtimestamp(path.stat().st_mtime, UTC),
                kind="email" if path.suffix == ".eml" else "sms",
                to=to,
                subject=subject,
            )
        )
    return entries
