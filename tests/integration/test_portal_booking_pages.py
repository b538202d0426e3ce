"""The booking pages' logic against the real app and store, with a patient's own token:
what each page reads and writes through the FHIR API, before any HTML."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar

from fhir_server.settings import Settings
from fhir_server.ui.fhir_api import PortalApi, PortalApiError
from fhir_server.ui.portal import booking_pages as pages
from fhir_server.ui.portal.booking_calendar import calendar_file
from tests.integration.auth_helpers import auth_app, call, new_patient
from tests.integration.booking_portal_setup import (
    PHONE,
    PatientClient,
    add_slot,
    days_ahead,
    seed_clinic,
)


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


def test_hold_then_book_names_the_clinic_zone(client: TestClient) -> None:
    site = seed_clinic(client)
    slot = add_slot(client, site.schedules["Okafor"], days_ahead(3, 10))
    api = PatientClient(client, new_patient(client, "Hold"))
    place = api.run(pages.clinic, site.service)
    assert str(place.zone) == "Europe/London"
    assert sorted(c.label for c in pages.clinicians(place)) == ["Dr Okafor", "Dr Shah"]

    held = api.run(pages.hold, slot)
    assert held["status"] == "pending"
    booked = api.run(pages.book_hold, held["id"], "Wheelchair access please")
    view = api.run(pages.appointment, booked["id"])
    assert (view.status, view.words, view.what, view.where, view.clinician) == (
        "booked",
        "Booked",
        "GP appointment",
        "Harbour Clinic",
        "Dr Okafor",
    )
    assert view.appointment["comment"] == "Wheelchair access please"
    assert view.start.zone == "Europe/London"
    assert view.schedule_id == site.schedules["Okafor"]

    ics = Calendar.from_ical(calendar_file(view, "GP appointment", pages.utc_now()))
    event = next(iter(ics.walk("VEVENT")))
    assert event.decoded("dtstart").tzinfo.key == "Europe/London"
    assert [tz["TZID"] for tz in ics.walk("VTIMEZONE")] == ["Europe/London"]
    assert event["uid"] == f"{view.id}@clinic-booking"
    assert "Harbour Clinic" in str(event["location"])


def test_an_appointment_read_alone_is_described_by_its_clinic_until_that_cannot(
    client: TestClient,
) -> None:
    """The appointment pages read the Appointment alone and take its service, place and
    clinician from the session's clinic; an inactive Schedule makes them look it up whole."""
    site = seed_clinic(client)
    slot = add_slot(client, site.schedules["Shah"], days_ahead(3, 11))
    api = PatientClient(client, new_patient(client, "Alone"))
    booked = api.run(pages.book_hold, api.run(pages.hold, slot)["id"])
    alone = api.run(pages.own_appointment, booked["id"])
    assert alone["id"] == booked["id"]
    whole = api.run(pages.appointment, booked["id"])
    view = pages.view_in(alone, api.run(pages.clinic, site.service))

    def said(v: pages.AppointmentView) -> tuple[Any, ...]:
        return (v.what, v.where, v.clinician, v.address, v.schedule_id, str(v.zone), v.contact)

    assert view is not None and said(view) == said(whole)
    assert said(view)[:3] == ("GP appointment", "Harbour Clinic", "Dr Shah")
    assert pages.view_in(alone, api.run(pages.clinic, site.empty_service)) is None

    store = client.app.state.services.store  # type: ignore[attr-defined]
    schedule = call(client, store.read, "Schedule", site.schedules["Shah"]).resource
    call(client, store.update, {**schedule, "active": False})
    assert pages.view_in(alone, api.run(pages.clinic, site.service)) is None
    assert api.run(pages.appointment, booked["id"]).clinician == "Dr Shah"
    with pytest.raises(pages.NotFound):
        PatientClient(client, new_patient(client, "Nosy")).run(pages.own_appointment, booked["id"])


def test_a_taken_time_is_refused_and_the_next_free_one_offered(client: TestClient) -> None:
    site = seed_clinic(client)
    first = add_slot(client, site.schedules["Shah"], days_ahead(4, 9))
    later = add_slot(client, site.schedules["Shah"], days_ahead(4, 11))
    alice = PatientClient(client, new_patient(client, "Alice"))
    bob = PatientClient(client, new_patient(client, "Bob"))
    alice.run(pages.hold, first)
    with pytest.raises(pages.NotFound):  # a held Slot is no longer public
        bob.run(pages.hold, first)
    place = bob.run(pages.clinic, site.service)
    nearest = bob.run(
        pages.next_free, place, site.schedules["Shah"], days_ahead(4, 8), pages.utc_now(), 3
    )
    assert [t.slot_id for t in nearest] == [later]


def test_an_empty_day_says_when_the_next_free_time_is(client: TestClient) -> None:
    site = seed_clinic(client)
    slot = add_slot(client, site.schedules["Okafor"], days_ahead(9, 10))
    api = PatientClient(client, new_patient(client, "Empty"))
    place = api.run(pages.clinic, site.service)
    empty = days_ahead(8, 12).astimezone(place.zone).date()
    view = api.run(pages.day, place, pages.ANYONE, empty, pages.utc_now())
    assert view.times == []
    found = view.elsewhere.next_free
    assert found is not None and found.slot_id == slot
    assert view.elsewhere.contact == []

    nothing = api.run(pages.clinic, site.empty_service)
    bare = api.run(pages.week, nothing, pages.ANYONE, empty, pages.utc_now())
    assert bare.elsewhere.next_free is None
    assert [t["value"] for t in bare.elsewhere.contact] == [PHONE]


def test_reschedule_swaps_in_one_step(client: TestClient) -> None:
    site = seed_clinic(client)
    old_slot = add_slot(client, site.schedules["Okafor"], days_ahead(5, 10))
    new_slot = add_slot(client, site.schedules["Okafor"], days_ahead(6, 10))
    api = PatientClient(client, new_patient(client, "Move"))
    old = api.run(pages.book_hold, api.run(pages.hold, old_slot)["id"])
    new = api.run(pages.reschedule, old["id"], new_slot)
    assert new["status"] == "booked"
    assert api.run(pages.appointment, old["id"]).status == "cancelled"
    upcoming, past = api.run(pages.my_appointments, pages.utc_now())
    assert [v.id for v in upcoming] == [new["id"]]
    assert [(v.id, v.words) for v in past] == [(old["id"], "Cancelled")]


def test_cancel_inside_the_cut_off_is_refused_by_the_server(client: TestClient) -> None:
    site = seed_clinic(client, cutoff_hours=48)
    soon = add_slot(client, site.schedules["Okafor"], pages.utc_now() + timedelta(hours=30))
    api = PatientClient(client, new_patient(client, "Late"))
    booked = api.run(pages.book_hold, api.run(pages.hold, soon)["id"])
    view = api.run(pages.appointment, booked["id"])
    with pytest.raises(PortalApiError) as refused:
        api.run(pages.cancel, view, "")
    assert refused.value.status == 422
    assert api.run(pages.appointment, booked["id"]).status == "booked"


def test_another_patients_appointment_and_a_forged_slot_are_not_found(
    client: TestClient,
) -> None:
    site = seed_clinic(client)
    slot = add_slot(client, site.schedules["Okafor"], days_ahead(7, 10))
    alice = PatientClient(client, new_patient(client, "Own"))
    mallory = PatientClient(client, new_patient(client, "Other"))
    booked = alice.run(pages.book_hold, alice.run(pages.hold, slot)["id"])
    with pytest.raises(pages.NotFound):
        mallory.run(pages.appointment, booked["id"])
    with pytest.raises(pages.NotFound):
        mallory.run(pages.hold, "no-such-slot")
    assert alice.run(pages.appointment, booked["id"]).status == "booked"


def test_a_batch_answers_each_read_in_order_and_each_passes_the_gate(
    client: TestClient,
) -> None:
    """`PortalApi.batch` is one call to the API; an entry the token may not read is refused
    as the read alone would be (the gate judges each entry)."""
    alice = PatientClient(client, new_patient(client, "Batched"))
    hidden = new_patient(client, "Hidden")

    async def batch(api: PortalApi, *paths: str) -> tuple[list[dict[str, Any]], int]:
        return await api.batch(*paths), api.calls

    found, calls = alice.run(batch, f"Patient/{alice.patient}", "HealthcareService?active=true")
    assert calls == 1
    assert (found[0]["resourceType"], found[0]["id"]) == ("Patient", alice.patient)
    assert found[1]["resourceType"] == "Bundle" and found[1]["type"] == "searchset"
    with pytest.raises(PortalApiError) as refused:
        alice.run(batch, f"Patient/{alice.patient}", f"Patient/{hidden}")
    assert refused.value.status == 404
