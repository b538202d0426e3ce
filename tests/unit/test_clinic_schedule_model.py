"""The schedule pages' pure model: clinicians from a Schedule search, visits with the actions
their status and the clock allow, tables by start time, and a request's answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.ui.clinic import schedule_model as model

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 7, 1, 12, 10, tzinfo=UTC)  # 13:10 in London (summer time)
TZ = "http://hl7.org/fhir/StructureDefinition/timezone"


def _appointment(aid: str, start: str, status: str = "booked", role: str = "r1") -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": aid,
        "meta": {"versionId": "3"},
        "status": status,
        "start": start,
        "end": start.replace(":00:00Z", ":30:00Z"),
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": f"PractitionerRole/{role}"}, "status": "accepted"},
            {"actor": {"reference": "HealthcareService/s1"}, "status": "accepted"},
        ],
    }


INCLUDED = [
    {"resourceType": "Patient", "id": "p1", "name": [{"given": ["Jane"], "family": "Doe"}]},
    {"resourceType": "HealthcareService", "id": "s1", "name": "GP appointment"},
]


def test_clinicians_take_the_practitioners_name_and_the_locations_zone() -> None:
    found = model.clinicians(
        [
            {
                "resourceType": "Schedule",
                "id": "sc1",
                "actor": [
                    {"reference": "PractitionerRole/r1"},
                    {"reference": "Location/l1"},
                ],
            },
            {
                "resourceType": "PractitionerRole",
                "id": "r1",
                "practitioner": {"reference": "Practitioner/d1"},
            },
            {"resourceType": "Practitioner", "id": "d1", "name": [{"text": "Dr Ada Okafor"}]},
            {
                "resourceType": "Location",
                "id": "l1",
                "extension": [{"url": TZ, "valueCode": "Europe/London"}],
            },
        ]
    )
    assert found == [
        model.Clinician("PractitionerRole/r1", "Dr Ada Okafor", "Practitioner/d1", LONDON)
    ]
    assert model.own(found, "https://clinic.example/fhir/Practitioner/d1") == found
    assert model.own(found, "Practitioner/d2") == [] and model.own(found, None) == []


def test_a_visit_offers_no_show_only_after_its_start_and_is_flagged_after_its_end() -> None:
    ahead = _appointment("a1", "2026-07-01T14:00:00Z")
    started = _appointment("a2", "2026-07-01T12:00:00Z")
    over = _appointment("a3", "2026-07-01T09:00:00Z")
    arrived = _appointment("a4", "2026-07-01T10:00:00Z", status="arrived")
    cancelled = _appointment("a5", "2026-07-01T10:00:00Z", status="cancelled")
    held = {
        **_appointment("a6", "2026-07-01T10:00:00Z", status="pending"),
        "extension": [{"url": model.HOLD_EXPIRES, "valueInstant": "2026-07-01T10:05:00Z"}],
    }
    visits = {
        v.id: v
        for v in model.visits(
            [ahead, started, over, arrived, cancelled, held, *INCLUDED], {}, LONDON, NOW
        )
    }
    assert set(visits) == {"a1", "a2", "a3", "a4"}  # cancelled and held are not on a schedule
    assert visits["a1"].actions == ("arrived",) and not visits["a1"].flagged
    assert visits["a2"].actions == ("arrived", "noshow") and not visits["a2"].flagged
    assert visits["a3"].flagged and visits["a4"].actions == ("fulfilled",)
    assert visits["a1"].patient == "Jane Doe" and visits["a1"].service == "GP appointment"
    assert visits["a1"].start.clock == "15:00" and visits["a1"].version == "3"
    assert visits["a4"].words == "Arrived"


def test_a_table_has_a_row_per_start_time_and_a_cell_per_column() -> None:
    appointments = [
        _appointment("a1", "2026-07-01T08:00:00Z", role="r1"),
        _appointment("a2", "2026-07-01T08:00:00Z", role="r2"),
        _appointment("a3", "2026-07-01T09:00:00Z", role="r2"),
        _appointment("a4", "2026-07-01T09:00:00Z", role="r3"),  # not a column shown
    ]
    visits = model.visits([*appointments, *INCLUDED], {}, LONDON, NOW)
    rows = model.table(visits, ["PractitionerRole/r1", "PractitionerRole/r2"], model.clinician_of)
    assert [r.time for r in rows] == ["09:00", "10:00"]
    assert [[[v.id for v in cell] for cell in r.cells] for r in rows] == [
        [["a1"], ["a2"]],
        [[], ["a3"]],
    ]


def test_a_request_is_accepted_by_every_provider_or_declined_with_a_reason() -> None:
    request = _appointment("a1", "2026-07-02T08:00:00Z", status="pending")
    request["participant"][1]["status"] = "needs-action"
    assert model.waiting(request) == ["PractitionerRole/r1"]
    accepted = model.answered(request, True, "")
    assert accepted["status"] == "pending" and not model.waiting(accepted)
    assert "cancelationReason" not in accepted
    declined = model.answered(request, False, "Away that day")
    assert declined["status"] == "cancelled"
    assert [p["status"] for p in declined["participant"]] == ["accepted", "declined", "accepted"]
    assert declined["cancelationReason"] == {"text": "Away that day"}
