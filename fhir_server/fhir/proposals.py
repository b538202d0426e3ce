"""The proposed Appointment for one free Slot, as Argonaut Scheduling's `$find` answers it.

One shape for the scheduling engine's `$find` and for the patient portal, which holds and
books exactly what `$find` would have proposed but may not import the engine.
"""

from __future__ import annotations

from fhir_server.fhir.resource import Resource

# Slot fields an Appointment carries over as they are.
_CARRIED = ("serviceCategory", "serviceType", "specialty", "appointmentType")


def proposed_appointment(
    slot_id: str, slot: Resource, schedule: Resource, patient: str | None
) -> Resource:
    """`patient` is a reference (`Patient/<id>`) or None; every Schedule actor takes part."""
    participants = [
        {"actor": {"reference": a["reference"]}, "required": "required", "status": "needs-action"}
        for a in schedule.get("actor", [])
        if a.get("reference")
    ]
    if patient:
        participants.insert(
            0, {"actor": {"reference": patient}, "required": "required", "status": "needs-action"}
        )
    appointment: Resource = {
        "resourceType": "Appointment",
        "status": "proposed",
        "start": slot["start"],
        "end": slot["end"],
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": participants,
    }
    for key in _CARRIED:
        if slot.get(key):
            appointment[key] = slot[key]
    return appointment
