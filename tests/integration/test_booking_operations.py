"""The scheduling operations over HTTP: generation, $find, $hold, $book, rule changes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.instants import parse_instant
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling.generation import generate as generate_slots
from fhir_server.scheduling.holidays import public_holidays
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore
from tests.integration.scheduling_setup import (
    HEADERS,
    diagnostics,
    duration,
    make_patient,
    make_schedule,
    post,
)

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def clinic(
    client: TestClient, zone: str, address: dict[str, str] | None = None, **schedule_ext: Any
) -> dict[str, Any]:
    location = post(
        client,
        {
            "resourceType": "Location",
            "name": "Clinic",
            "extension": [{"url": ext.TIMEZONE, "valueCode": zone}],
            **({"address": address} if address else {}),
            "hoursOfOperation": [
                {"daysOfWeek": WEEKDAYS, "openingTime": "08:00:00", "closingTime": "18:00:00"}
            ],
        },
    )
    practitioner = post(client, {"resourceType": "Practitioner", "name": [{"family": "Doc"}]})
    role = post(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{practitioner['id']}"},
            "availableTime": [
                {
                    "daysOfWeek": WEEKDAYS,
                    "availableStartTime": "09:00:00",
                    "availableEndTime": "17:00:00",
                }
            ],
        },
    )
    extensions = [{"url": ext.SLOT_LENGTH, "valueDuration": duration(60)}]
    if "hold_seconds" in schedule_ext:
        extensions.append(
            {
                "url": ext.HOLD_DURATION,
                "valueDuration": {"value": schedule_ext["hold_seconds"], "code": "s"},
            }
        )
    schedule = make_schedule(client, role["id"], location["id"], extensions)
    return {"location": location, "role": role, "schedule": schedule, "practitioner": practitioner}


def next_weekday(after_days: int) -> date:
    day = datetime.now(UTC).date() + timedelta(days=after_days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def generate(client: TestClient, schedule_id: str, first: date, days: int) -> dict[str, Any]:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueDateTime": f"{first.isoformat()}T00:00:00Z"},
            {
                "name": "end",
                "valueDateTime": f"{(first + timedelta(days=days)).isoformat()}T00:00:00Z",
            },
        ],
    }
    response = client.post(
        f"/fhir/Schedule/{schedule_id}/$generate-slots", json=body, headers=HEADERS
    )
    assert response.status_code == 200, response.text
    return {
        p["name"]: p.get("valueInteger", p.get("valueReference"))
        for p in response.json()["parameter"]
    }


def find(client: TestClient, first: date, days: int, **params: str) -> list[dict[str, Any]]:
    query = {
        "start": f"{first.isoformat()}T00:00:00Z",
        "end": f"{(first + timedelta(days=days)).isoformat()}T00:00:00Z",
        **params,
    }
    response = client.get("/fhir/Appointment/$find", params=query)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def slot(client: TestClient, ref: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/fhir/{ref}").json()
    return body


def test_generation_is_idempotent_and_in_local_time(client: TestClient) -> None:
    sydney = clinic(client, "Australia/Sydney")
    day = next_weekday(10)
    first = generate(client, sydney["schedule"]["id"], day, 1)
    again = generate(client, sydney["schedule"]["id"], day, 1)
    assert first["created"] > 0
    assert again["created"] == 0 and again["kept"] == first["created"]
    proposals = find(client, day - timedelta(days=1), 3, practitioner=sydney["practitioner"]["id"])
    local_hours = {
        parse_instant(p["start"]).astimezone(ZoneInfo("Australia/Sydney")).hour for p in proposals
    }
    assert local_hours and min(local_hours) >= 9 and max(local_hours) <= 16


def test_client_in_another_zone_books_a_clinic_slot(client: TestClient) -> None:
    sydney = clinic(client, "Australia/Sydney")
    day = next_weekday(12)
    generate(client, sydney["schedule"]["id"], day, 1)
    proposal = find(client, day - timedelta(days=1), 3, practitioner=sydney["practitioner"]["id"])[
        0
    ]
    los_angeles = ZoneInfo("America/Los_Angeles")

    def in_la(text: str) -> str:
        return parse_instant(text).astimezone(los_angeles).isoformat()

    body = {
        **proposal,
        "status": "booked",
        "start": in_la(proposal["start"]),
        "end": in_la(proposal["end"]),
        "participant": [
            {"actor": {"reference": f"Patient/{make_patient(client)}"}, "status": "accepted"}
        ],
    }
    assert body["start"] != proposal["start"]
    response = client.post("/fhir/Appointment", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    assert response.json()["start"] == proposal["start"]


def test_public_holiday_of_the_locations_country_has_no_slots(client: TestClient) -> None:
    today = datetime.now(UTC).date()
    holidays = public_holidays("GB", "ENG", today + timedelta(days=3), today + timedelta(days=390))
    holiday = min(d for d in holidays if d.weekday() < 5)
    london = clinic(client, "Europe/London", {"country": "GB", "state": "ENG"})
    generate(client, london["schedule"]["id"], holiday - timedelta(days=1), 3)
    proposals = find(
        client, holiday - timedelta(days=1), 3, practitioner=london["practitioner"]["id"]
    )
    days = {p["start"][:10] for p in proposals}
    assert holiday.isoformat() not in days
    assert days, "the working days around the holiday have slots"


def test_rule_change_removes_free_slots_and_flags_bookings(client: TestClient) -> None:
    site = clinic(client, "America/New_York")
    day = next_weekday(14)
    created = generate(client, site["schedule"]["id"], day, 1)["created"]
    proposal = find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"])[0]
    booked = client.post(
        "/fhir/Appointment",
        json={
            **proposal,
            "status": "booked",
            "participant": [
                {"actor": {"reference": f"Patient/{make_patient(client)}"}, "status": "accepted"}
            ],
        },
        headers=HEADERS,
    ).json()
    role = site["role"]
    role.pop("meta")
    role["notAvailable"] = [
        {"description": "Leave", "during": {"start": day.isoformat(), "end": day.isoformat()}}
    ]
    assert (
        client.put(f"/fhir/PractitionerRole/{role['id']}", json=role, headers=HEADERS).status_code
        == 200
    )

    report = generate(client, site["schedule"]["id"], day, 1)
    assert report["removed"] == created - 1 and report["created"] == 0
    assert report["flagged"] == {"reference": f"Appointment/{booked['id']}"}
    assert slot(client, proposal["slot"][0]["reference"])["status"] == "busy"
    kept = client.get(f"/fhir/Appointment/{booked['id']}").json()
    assert kept["status"] == "booked"
    listed = client.get("/fhir/Appointment/$outside-availability").json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [booked["id"]]
    assert find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"]) == []


def _hold(client: TestClient, proposal: dict[str, Any], patient_id: str) -> Any:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "appt-resource",
                "resource": {
                    **proposal,
                    "participant": [
                        {"actor": {"reference": f"Patient/{patient_id}"}, "status": "needs-action"}
                    ],
                },
            }
        ],
    }
    return client.post("/fhir/Appointment/$hold", json=body, headers=HEADERS)


def test_hold_then_book_by_reference(client: TestClient) -> None:
    site = clinic(client, "Europe/London")
    day = next_weekday(16)
    generate(client, site["schedule"]["id"], day, 1)
    proposal = find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"])[0]
    held = _hold(client, proposal, make_patient(client))
    assert held.status_code == 200, held.text
    pending = held.json()["entry"][0]["resource"]
    assert pending["status"] == "pending"
    assert ext.first(pending, ext.HOLD_EXPIRES) is not None
    assert slot(client, proposal["slot"][0]["reference"])["status"] == "busy-tentative"

    rival = _hold(client, proposal, make_patient(client, "Rival"))
    assert rival.status_code == 409 and "held" in diagnostics(rival)

    book = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "appointment-reference",
                "valueReference": {"reference": f"Appointment/{pending['id']}"},
            }
        ],
    }
    booked = client.post("/fhir/Appointment/$book", json=book, headers=HEADERS)
    assert booked.status_code == 200, booked.text
    result = booked.json()["entry"][0]["resource"]
    assert result["status"] == "booked" and ext.first(result, ext.HOLD_EXPIRES) is None
    assert slot(client, proposal["slot"][0]["reference"])["status"] == "busy"


def test_expired_hold_is_released_to_the_next_booking(client: TestClient) -> None:
    site = clinic(client, "Europe/London", hold_seconds=1)
    day = next_weekday(18)
    generate(client, site["schedule"]["id"], day, 1)
    proposal = find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"])[0]
    pending = _hold(client, proposal, make_patient(client)).json()["entry"][0]["resource"]
    offered = find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"])
    assert proposal["slot"] not in [p["slot"] for p in offered]
    time.sleep(1.5)
    other = {
        **proposal,
        "status": "booked",
        "participant": [
            {
                "actor": {"reference": f"Patient/{make_patient(client, 'Late')}"},
                "status": "accepted",
            }
        ],
    }
    response = client.post("/fhir/Appointment", json=other, headers=HEADERS)
    assert response.status_code == 201, response.text
    expired = client.get(f"/fhir/Appointment/{pending['id']}").json()
    assert expired["status"] == "cancelled"
    assert expired["cancelationReason"]["text"] == "Hold expired"
    assert slot(client, proposal["slot"][0]["reference"])["status"] == "busy"


def test_hold_released_early_by_patch(client: TestClient) -> None:
    site = clinic(client, "Europe/London")
    day = next_weekday(20)
    generate(client, site["schedule"]["id"], day, 1)
    proposal = find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"])[0]
    pending = _hold(client, proposal, make_patient(client)).json()["entry"][0]["resource"]
    released = client.patch(
        f"/fhir/Appointment/{pending['id']}",
        json=[
            {"op": "replace", "path": "/status", "value": "cancelled"},
            {"op": "add", "path": "/cancelationReason", "value": {"text": "Changed my mind"}},
        ],
        headers={"content-type": "application/json-patch+json"},
    )
    assert released.status_code == 200, released.text
    assert slot(client, proposal["slot"][0]["reference"])["status"] == "free"


def _book_params(resource: dict[str, Any], cancelled: str | None = None) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [{"name": "appointment-resource", "resource": resource}]
    if cancelled:
        parameters.append({"name": "cancelled-appt-id", "valueString": cancelled})
    return {"resourceType": "Parameters", "parameter": parameters}


def test_book_with_cancelled_appt_id_reschedules_atomically(client: TestClient) -> None:
    site = clinic(client, "America/New_York")
    day = next_weekday(22)
    generate(client, site["schedule"]["id"], day, 1)
    first, second, third = find(
        client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"]
    )[:3]
    pid = make_patient(client)
    me = [{"actor": {"reference": f"Patient/{pid}"}, "status": "accepted"}]
    original = client.post(
        "/fhir/Appointment/$book", json=_book_params({**first, "participant": me}), headers=HEADERS
    )
    assert original.status_code == 200, original.text
    original_id = original.json()["entry"][0]["resource"]["id"]
    other = [
        {"actor": {"reference": f"Patient/{make_patient(client, 'Other')}"}, "status": "accepted"}
    ]
    client.post(
        "/fhir/Appointment/$book",
        json=_book_params({**third, "participant": other}),
        headers=HEADERS,
    )

    refused = client.post(
        "/fhir/Appointment/$book",
        json=_book_params({**third, "participant": me}, original_id),
        headers=HEADERS,
    )
    assert refused.status_code == 409
    assert client.get(f"/fhir/Appointment/{original_id}").json()["status"] == "booked"
    assert slot(client, first["slot"][0]["reference"])["status"] == "busy"

    moved = client.post(
        "/fhir/Appointment/$book",
        json=_book_params({**second, "participant": me}, original_id),
        headers=HEADERS,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["entry"][0]["resource"]["status"] == "booked"
    old = client.get(f"/fhir/Appointment/{original_id}").json()
    assert old["status"] == "cancelled"
    assert slot(client, first["slot"][0]["reference"])["status"] == "free"
    assert slot(client, second["slot"][0]["reference"])["status"] == "busy"


def test_book_idempotency_key_returns_the_first_result(client: TestClient) -> None:
    site = clinic(client, "America/New_York")
    day = next_weekday(24)
    generate(client, site["schedule"]["id"], day, 1)
    proposal = find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"])[0]
    me = [{"actor": {"reference": f"Patient/{make_patient(client)}"}, "status": "accepted"}]
    params = _book_params({**proposal, "participant": me})
    headers = {**HEADERS, "idempotency-key": "book-once"}
    first = client.post("/fhir/Appointment/$book", json=params, headers=headers)
    second = client.post("/fhir/Appointment/$book", json=params, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["entry"][0]["resource"]["id"] == second.json()["entry"][0]["resource"]["id"]


def test_operation_input_errors_and_definitions(client: TestClient) -> None:
    site = clinic(client, "UTC")
    missing = client.get(f"/fhir/Schedule/{site['schedule']['id']}/$generate-slots")
    assert missing.status_code == 400
    day = next_weekday(26)
    by_get = client.get(
        f"/fhir/Schedule/{site['schedule']['id']}/$generate-slots",
        params={"start": f"{day.isoformat()}T00:00:00Z", "end": f"{day.isoformat()}T23:59:59Z"},
    )
    assert by_get.status_code == 200
    backwards = client.get(
        f"/fhir/Schedule/{site['schedule']['id']}/$generate-slots",
        params={"start": f"{day.isoformat()}T10:00:00Z", "end": f"{day.isoformat()}T09:00:00Z"},
    )
    assert backwards.status_code == 422
    naive = client.get(
        "/fhir/Appointment/$find", params={"start": "2030-01-01T00:00:00", "end": "2030-01-02"}
    )
    assert naive.status_code == 400
    empty_book = client.post(
        "/fhir/Appointment/$book", json={"resourceType": "Parameters"}, headers=HEADERS
    )
    assert empty_book.status_code == 400
    for code in (
        "Appointment-find",
        "Appointment-hold",
        "Appointment-book",
        "Schedule-generate-slots",
    ):
        assert client.get(f"/fhir/OperationDefinition/{code}").status_code == 200


def test_every_booking_extension_is_published(client: TestClient) -> None:
    urls = [v for k, v in vars(ext).items() if k.isupper() and str(v).startswith(ext.BASE + "/")]
    assert len(urls) >= 13
    for url in urls:
        sid = url.rsplit("/", 1)[1]
        response = client.get(f"/fhir/StructureDefinition/{sid}")
        assert response.status_code == 200, sid
        assert response.json()["url"] == url


def test_orphaned_busy_slot_is_repaired_only_when_settled(client: TestClient) -> None:
    site = clinic(client, "UTC")
    day = next_weekday(28)
    generate(client, site["schedule"]["id"], day, 1)
    proposal = find(client, day - timedelta(days=1), 3, practitioner=site["practitioner"]["id"])[0]
    slot_ref = proposal["slot"][0]["reference"]
    # A Slot left busy with no Appointment (as a booking that died half-way would leave it;
    # deleting an Appointment frees its Slots, so the orphan is made directly).
    orphan = {k: v for k, v in slot(client, slot_ref).items() if k != "meta"}
    made = client.put(f"/fhir/{slot_ref}", json={**orphan, "status": "busy"}, headers=HEADERS)
    assert made.status_code == 200, made.text
    assert slot(client, slot_ref)["status"] == "busy"
    settings = client.app.state.services.settings  # type: ignore[attr-defined]

    async def run(now: datetime) -> int:
        database = await connect(str(settings.mongodb_uri), settings.database)
        try:
            store = ResourceStore(database, indexer=ResourceIndexer(settings.base_url))
            start = datetime.combine(day, datetime.min.time(), UTC)
            report = await generate_slots(
                store, site["schedule"]["id"], (start, start + timedelta(days=1)), now
            )
            return report.repaired
        finally:
            await database.close()

    assert asyncio.run(run(datetime.now(UTC))) == 0
    assert slot(client, slot_ref)["status"] == "busy"
    assert asyncio.run(run(datetime.now(UTC) + timedelta(minutes=6))) == 1
    assert slot(client, slot_ref)["status"] == "free"


def test_find_filters_and_notice(client: TestClient) -> None:
    site = clinic(client, "UTC")
    schedule = {k: v for k, v in site["schedule"].items() if k != "meta"}
    schedule["specialty"] = [{"coding": [{"system": "urn:s", "code": "derm"}]}]
    schedule["extension"] = [
        *schedule["extension"],
        {"url": ext.MINIMUM_NOTICE, "valueDuration": {"value": 3, "code": "d"}},
    ]
    assert (
        client.put(f"/fhir/Schedule/{schedule['id']}", json=schedule, headers=HEADERS).status_code
        == 200
    )
    today = datetime.now(UTC).date()
    generate(client, schedule["id"], today, 8)
    mine = {"practitioner": site["practitioner"]["id"]}
    proposals = find(client, today, 8, **mine)
    assert proposals
    earliest = min(parse_instant(p["start"]) for p in proposals)
    assert earliest >= datetime.now(UTC) + timedelta(days=3)
    assert find(client, today, 8, specialty="urn:s|derm", **mine)
    assert find(client, today, 8, specialty="urn:s|cardio", **mine) == []
    assert find(client, today, 8, location=site["location"]["id"], **mine)
    assert find(client, today, 8, location="Location/elsewhere", **mine) == []
    assert len(find(client, today, 8, _count="2", **mine)) == 2
