"""Appointment statuses grouped by what they mean for a booking, defined once.

The codes are FHIR R4's `appointmentstatus`; the groups are this server's
reading of them, shared by the booking rules, the store's queries, the
notifications and the reports so they cannot disagree.
"""

from __future__ import annotations

from typing import Final

ACTIVE: Final = ("proposed", "pending", "booked", "arrived", "checked-in")
"""Statuses that hold their Slot(s) and the patient's time."""

BOOKED: Final = ("booked", "pending", "arrived", "checked-in")
"""Active statuses a booking through the engine can have (a stored `proposed` one never was)."""

RELEASING: Final = ("cancelled", "entered-in-error")
"""Statuses that give the Slot(s) and the patient's time back."""

ANNOUNCED: Final = ("booked", "pending")
"""Statuses a patient and provider are told about when an Appointment enters or leaves them."""

CLINIC_MARKS: Final = ("arrived", "checked-in", "fulfilled", "noshow")
"""Statuses only the clinic (staff or the practitioner) records: what happened on the day."""

MOVABLE: Final = ("booked", "pending", "proposed")
"""Statuses in which an Appointment can still be moved to other Slots."""
