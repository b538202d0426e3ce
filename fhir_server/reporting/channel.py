"""What a write records on an Appointment for the reports, from the caller (pure).

The booking channel is decided by the server when the Appointment is first
written, from the access token's client: the patient portal's client
(`portal`), the clinic workspace's (`clinic`), a backend service acting for an
EHR (a token without a user and with `system/` scopes: `ehr`), anything else a
SMART app or direct API use (`app`). It is the extension `booking-channel`
(a code), so every FHIR client sees it and a rebuild of the reports from the
history finds it.

A cancellation written by a patient's token without a coded reason gets the
R4 `appointment-cancellation-reason` code `pat`, so the reports can split
patient- from clinic-initiated cancellations from `cancelationReason` alone.
"""

from __future__ import annotations

from typing import Any, Final

from fhir_server.fhir.resource import Resource

CHANNEL_URL: Final = "https://clinic-booking.example.org/fhir/StructureDefinition/booking-channel"
CHANNELS: Final = ("portal", "clinic", "app", "ehr")
DEFAULT_CHANNEL: Final = "app"
CANCEL_REASON_SYSTEM: Final = (
    "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
)
# First-party clients whose bookings are a channel of their own.
_CLIENT_CHANNELS: Final = {"portal": "portal", "clinic": "clinic"}


def channel_of(client_id: str, *, has_user: bool, system_scopes: bool) -> str:
    """The channel of a write made with a token of this client."""
    if client_id in _CLIENT_CHANNELS:
        return _CLIENT_CHANNELS[client_id]
    if not has_user and system_scopes:
        return "ehr"
    return DEFAULT_CHANNEL


def channel_in(appointment: Resource) -> str | None:
    """The channel an Appointment records, or None."""
    for extension in appointment.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == CHANNEL_URL:
            value = extension.get("valueCode")
            return value if value in CHANNELS else None
    return None


def stamp_channel(appointment: dict[str, Any], channel: str | None) -> None:
    """Record `channel` on the Appointment (in place), replacing any other value; with
    None (no token: auth off) keep the one given, else record the default."""
    chosen = channel or channel_in(appointment) or DEFAULT_CHANNEL
    kept = [e for e in appointment.get("extension") or [] if e.get("url") != CHANNEL_URL]
    appointment["extension"] = [*kept, {"url": CHANNEL_URL, "valueCode": chosen}]


def patient_initiated(appointment: Resource) -> bool:
    """Whether a cancellation's reason is coded as the patient's (R4 codes `pat...`)."""
    reason = appointment.get("cancelationReason") or {}
    return any(
        c.get("system") == CANCEL_REASON_SYSTEM and str(c.get("code", "")).startswith("pat")
        for c in reason.get("coding") or []
        if isinstance(c, dict)
    )


def stamp_patient_cancellation(appointment: dict[str, Any]) -> None:
    """Code a patient's cancellation as `pat` (in place) when its reason has no R4 code."""
    if appointment.get("status") != "cancelled":
        return
    reason = appointment.get("cancelationReason")
    reason = dict(reason) if isinstance(reason, dict) else {}
    codings = [c for c in reason.get("coding") or [] if isinstance(c, dict)]
    if any(c.get("system") == CANCEL_REASON_SYSTEM for c in codings):
        return
    reason["coding"] = [*codings, {"system": CANCEL_REASON_SYSTEM, "code": "pat"}]
    appointment["cancelationReason"] = reason
