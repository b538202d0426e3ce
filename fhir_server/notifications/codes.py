"""Canonical URLs and codes of the notifications (published from `profiles/` and `terminology/`).

One place for them so the writer (events), the sender (delivery) and the
published definitions cannot drift apart.
"""

from __future__ import annotations

from typing import Final

BASE: Final = "https://clinic-booking.example.org/fhir"

PREFERENCES_EXT: Final = f"{BASE}/StructureDefinition/notification-preferences"
DELIVERY_EXT: Final = f"{BASE}/StructureDefinition/notification-delivery"
EVENT_SYSTEM: Final = f"{BASE}/CodeSystem/notification-event"
CHANNEL_SYSTEM: Final = f"{BASE}/CodeSystem/notification-channel"
KEY_SYSTEM: Final = f"{BASE}/notification-key"

EVENTS: Final = (
    "booked",
    "pending",
    "confirmed",
    "declined",
    "cancelled",
    "rescheduled",
    "hold-expired",
    "reminder",
)
# A written version of a followed record (Encounter, ChargeItem): rest-hooks only.
CHANGED: Final = "changed"
PERSON_CHANNELS: Final = ("email", "sms", "push")
RESTHOOK: Final = "rest-hook"
SUPPORTED_LANGUAGES: Final = ("en", "fr")
