"""What every transport receives and how it fails.

A `DeliveryError` says whether trying again can help: `permanent` failures
(an address the server refuses, a 4xx from the SMS provider) end the message
as `not-done` at once; the others are retried with backoff until the last
attempt.
"""

from __future__ import annotations

from dataclasses import dataclass


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Rendered:
    """A message ready to go: text for every channel, HTML and calendar for e-mail."""

    message_id: str
    destination: str
    subject: str
    text: str
    html: str
    short: str  # SMS and push body: a line and a link, never clinical detail
    link: str
    calendar: bytes | None = None
    calendar_method: str | None = None
