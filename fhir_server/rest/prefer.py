"""The Prefer header: return=minimal|representation|OperationOutcome, handling=strict|lenient."""

from __future__ import annotations


def preference(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.split(","):
        for token in part.split(";"):
            key, _, value = token.strip().partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"')
    return None
