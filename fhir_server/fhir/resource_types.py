"""Which FHIR resource types this server stores and serves."""

from __future__ import annotations

from typing import Final

SERVED_TYPES: Final[tuple[str, ...]] = (
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Schedule",
    "Slot",
    "Appointment",
    "AppointmentResponse",
    # What a visit leaves for the EHR and billing (`visits`): written by the server when the
    # clinic records check-in and outcome; read, searched and exported like the rest.
    "Encounter",
    "ChargeItem",
    # Infrastructure types of the notifications (ARCHITECTURE.md): the outbox of
    # messages as Communications, and the EHRs' rest-hook Subscriptions.
    "Communication",
    "Subscription",
    # A bulk export's cohort (`Group/[id]/$export`): a practitioner's or location's patients.
    "Group",
)

# Written by the server alone; read and searched by admins only (`rest.audit_events`).
ADMIN_TYPES: Final[tuple[str, ...]] = ("AuditEvent",)

# Served read-only from packaged files or code, not from the store (Measure: the
# report metrics, `reporting.measures`).
CONFORMANCE_TYPES: Final[tuple[str, ...]] = (
    "CodeSystem",
    "ValueSet",
    "StructureDefinition",
    "Measure",
)
