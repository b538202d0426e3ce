"""The SMART Scheduling Links extension URLs (constants only, so the portal can name
`booking-referral` without importing the publishing code)."""

from __future__ import annotations

SSL = "http://hl7.org/fhir/uv/smart-scheduling-links/StructureDefinition"
BOOKING_DEEP_LINK = f"{SSL}/booking-deep-link"
BOOKING_PHONE = f"{SSL}/booking-phone"
SLOT_CAPACITY = f"{SSL}/slot-capacity"
# Where the portal records the `source` a slot finder sent the patient with (on the Appointment).
BOOKING_REFERRAL = f"{SSL}/booking-referral"
