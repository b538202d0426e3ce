"""`Recent`: values a process worked out lately, kept a short while for the next request.

Three callers, each with its reason:
- the booking steps (clinician, week, day, check your answers) each need the
  chosen service with its Location and Schedules, a FHIR search that cost a
  third of a week page, and the appointment pages describe an Appointment with
  the same (`ui/portal/clinics.py`). A patient walks through those steps in a
  minute, so the portal keeps what the search answered per session for 30
  seconds. It was read through the API with the session's own token, so
  nothing is seen that the token could not read; a Schedule made inactive, or
  a cancellation cut-off changed, meanwhile shows so for at most that long,
  while the times come from a fresh search on every page and booking,
  rescheduling and cancelling are checked again by the server.
- the clinic workspace's schedule pages start from the directory of clinicians
  (Schedules, their PractitionerRoles and Practitioners): one search a staff
  session repeats on every day and week it moves to, kept likewise per session.
  A clinician added meanwhile appears within 30 seconds.
- the API checks the signature of the same access token on every call a page
  makes; `auth.tokens` keeps the claims of a token whose signature it checked
  (a pure function of the token's bytes and the key, which must still be held).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most `size` values, each kept `seconds` after it was put; the oldest go first."""

    def __init__(self, seconds: float, size: int) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (time.monotonic() + self._seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
