"""Topic-based Subscriptions (Subscriptions R5 Backport IG) through a real worker and Redis.

Each test makes its own people, appointments and Subscriptions, and its own
rest-hook path on the EHR stand-in, so tests do not see each other's posts.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from fhir_server.app import create_app
from fhir_server.notifications.events import AppointmentEvent
from fhir_server.notifications.topics import FILTER_EXT, PAYLOAD_EXT, TOPIC_CANONICAL_EXT, TOPICS
from tests.integration.notify_support import Running, fhir_json

BOOKED, CANCELLED, RESCHEDULED, SLOT_FREED = (topic.url for topic in TOPICS[:4])
HEADERS = {"Content-Type": "application/fhir+json"}


def _n() -> str:
    return os.urandom(4).hex()


def _patient(env: Running) -> str:
    created = env.rig.create({"resourceType": "Patient", "name": [{"family": "Martin"}]})
    return f"Patient/{created['id']}"


def _appointment(env: Running, patient: str, slots: list[str] | None = None) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    return env.rig.create(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "slot": [{"reference": s} for s in slots or []],
            "participant": [{"actor": {"reference": patient}, "status": "accepted"}],
        }
    )


def _subscription(
    topic: str, endpoint: str, filters: list[str], content: str | None = "full-resource"
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if content is not None:
        channel["payload"] = "application/fhir+json"
        channel["_payload"] = {"extension": [{"url": PAYLOAD_EXT, "valueCode": content}]}
    subscription = {
        "resourceType": "Subscription",
        "status": "active",
        "reason": "EHR sync",
        "criteria": topic,
        "channel": channel,
    }
    if filters:
        extensions = [{"url": FILTER_EXT, "valueString": f} for f in filters]
        subscription["_criteria"] = {"extension": extensions}
    return subscription


def _subscribe(env: Running, topic: str, filters: list[str], **kw: Any) -> tuple[str, str]:
    """(Subscription id, the rest-hook path it posts to)."""
    hook = f"/hook/{_n()}"
    created = env.rig.create(_subscription(topic, f"{env.http.url}{hook}", filters, **kw))
    return created["id"], hook


def _notifications(env: Running, event: AppointmentEvent, hook: str) -> list[dict[str, Any]]:
    env.rig.wait_settled(env.rig.record(event))
    bundles = [fhir_json(r.body) for r in env.http.posted(hook)]
    for bundle in bundles:
        Bundle.model_validate(bundle)  # a valid FHIR Bundle, Parameters and focus included
    return bundles


def _status(bundle: dict[str, Any]) -> dict[str, Any]:
    """The status Parameters by name (notification-event parts flattened in)."""
    params = bundle["entry"][0]["resource"]["parameter"]
    out = {
        p["name"]: next(v for k, v in p.items() if k.startswith("value"))
        for p in params
        if "part" not in p
    }
    for p in params:
        for part in p.get("part", []):
            out[part["name"]] = next(v for k, v in part.items() if k.startswith("value"))
    return out


def test_booked_posts_history_bundle_with_status_first_then_the_appointment(env: Running) -> None:
    patient = _patient(env)
    sid, hook = _subscribe(env, BOOKED, [f"Appointment?patient={patient}"])
    first = _appointment(env, patient)
    [bundle] = _notifications(env, AppointmentEvent("booked", first), hook)
    assert bundle["type"] == "history"
    status = _status(bundle)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Parameters"
    assert status["subscription"]["reference"].endswith(f"/Subscription/{sid}")
    assert status["topic"] == BOOKED
    assert status["type"] == "event-notification"
    assert status["event-number"] == status["events-since-subscription-start"] == "1"
    assert status["focus"]["reference"].endswith(f"/Appointment/{first['id']}")
    assert bundle["entry"][1]["resource"]["id"] == first["id"]
    assert bundle["entry"][1]["fullUrl"].endswith(f"/Appointment/{first['id']}")
    # The next event is number 2; recording the first again numbers nothing.
    env.rig.record(AppointmentEvent("booked", first))
    second = _appointment(env, patient)
    bundles = _notifications(env, AppointmentEvent("booked", second), hook)
    assert [_status(b)["event-number"] for b in bundles] == ["1", "2"]
    with TestClient(create_app(env.rig.settings)) as api:
        for answer in (
            api.get(f"/fhir/Subscription/{sid}/$status"),
            api.post(f"/fhir/Subscription/{sid}/$status", headers=HEADERS),
        ):
            assert answer.status_code == 200, answer.text
            assert answer.json()["type"] == "searchset"
            reported = _status(answer.json())
            assert reported["type"] == "query-status"
            assert reported["events-since-subscription-start"] == "2"
            assert reported["status"] == "active"


def test_id_only_and_empty_payloads(env: Running) -> None:
    patient = _patient(env)
    _, id_only = _subscribe(env, BOOKED, [f"Appointment?patient={patient}"], content="id-only")
    _, empty = _subscribe(env, BOOKED, [f"Appointment?actor={patient}"], content="empty")
    _, bare = _subscribe(env, BOOKED, [f"Appointment?patient={patient}"], content=None)
    appointment = _appointment(env, patient)
    [with_id] = _notifications(env, AppointmentEvent("booked", appointment), id_only)
    assert len(with_id["entry"]) == 2
    assert "resource" not in with_id["entry"][1]
    assert with_id["entry"][1]["fullUrl"].endswith(f"/Appointment/{appointment['id']}")
    for hook in (empty, bare):
        [bundle] = [fhir_json(r.body) for r in env.http.posted(hook)]
        assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Parameters"]
        assert _status(bundle)["event-number"] == "1"


def test_filter_that_does_not_match_sends_nothing(env: Running) -> None:
    patient, other = _patient(env), _patient(env)
    _, hook = _subscribe(env, BOOKED, [f"Appointment?patient={other}"])
    _, cancelled = _subscribe(env, CANCELLED, [f"Appointment?patient={patient}"])
    ids = env.rig.record(AppointmentEvent("booked", _appointment(env, patient)))
    mediums = [c["medium"][0]["coding"][0]["code"] for c in env.rig.communications(ids)]
    assert "rest-hook" not in mediums
    assert env.http.posted(hook) == [] and env.http.posted(cancelled) == []


def _slot(env: Running, schedule: dict[str, Any], days: int = 3) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return env.rig.create(
        {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{schedule['id']}"},
            "status": "free",
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def _schedule(env: Running) -> dict[str, Any]:
    return env.rig.create({"resourceType": "Schedule", "actor": [{"reference": "Location/x"}]})


def test_slot_freed_on_cancel_has_the_slot_as_focus(env: Running) -> None:
    schedule, other = _schedule(env), _schedule(env)
    slot = _slot(env, schedule)
    _, hook = _subscribe(env, SLOT_FREED, [f"Slot?schedule=Schedule/{schedule['id']}"])
    _, elsewhere = _subscribe(env, SLOT_FREED, [f"Slot?schedule={other['id']}"])
    appointment = _appointment(env, _patient(env), [f"Slot/{slot['id']}"])
    cancelled = {**appointment, "status": "cancelled"}
    [bundle] = _notifications(env, AppointmentEvent("cancelled", cancelled), hook)
    assert _status(bundle)["topic"] == SLOT_FREED
    assert _status(bundle)["focus"]["reference"].endswith(f"/Slot/{slot['id']}")
    assert bundle["entry"][1]["resource"]["resourceType"] == "Slot"
    assert bundle["entry"][1]["resource"]["id"] == slot["id"]
    assert env.http.posted(elsewhere) == []


def test_reschedule_frees_only_the_slots_left_behind(env: Running) -> None:
    schedule = _schedule(env)
    kept, left = _slot(env, schedule), _slot(env, schedule, days=4)
    _, freed = _subscribe(env, SLOT_FREED, [f"Slot?schedule={schedule['id']}"], content="id-only")
    patient = _patient(env)
    _, moved = _subscribe(env, RESCHEDULED, [f"Appointment?patient={patient}"])
    before = _appointment(env, patient, [f"Slot/{kept['id']}", f"Slot/{left['id']}"])
    after = env.rig.update({**before, "slot": [{"reference": f"Slot/{kept['id']}"}]})
    event = AppointmentEvent("rescheduled", after, previous=before)
    bundles = _notifications(env, event, freed)
    assert [b["entry"][1]["fullUrl"].rsplit("/", 2)[1:] for b in bundles] == [["Slot", left["id"]]]
    [bundle] = [fhir_json(r.body) for r in env.http.posted(moved)]
    assert _status(bundle)["topic"] == RESCHEDULED
    assert bundle["entry"][1]["resource"]["meta"]["versionId"] == "2"


def test_r4_criteria_subscription_still_gets_the_resource(env: Running) -> None:
    patient = _patient(env)
    hook = f"/hook/{_n()}"
    env.rig.create(
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "R4 criteria",
            "criteria": f"Appointment?patient={patient}",
            "channel": {
                "type": "rest-hook",
                "endpoint": f"{env.http.url}{hook}",
                "payload": "application/fhir+json",
            },
        }
    )
    appointment = _appointment(env, patient)
    env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appointment)))
    [request] = env.http.posted(hook)
    assert fhir_json(request.body)["resourceType"] == "Appointment"
    assert fhir_json(request.body)["id"] == appointment["id"]


@pytest.mark.parametrize(
    ("topic", "filters", "content"),
    [
        ("https://clinic-booking.example.org/fhir/SubscriptionTopic/nope", [], "id-only"),
        (BOOKED, ["Appointment?status=booked"], "id-only"),
        (BOOKED, ["Slot?schedule=Schedule/1"], "id-only"),
        (SLOT_FREED, ["Slot?patient=Patient/1"], "id-only"),
        (RESCHEDULED, [], "everything"),
    ],
)
def test_unknown_topic_filter_or_payload_is_422(
    env: Running, topic: str, filters: list[str], content: str
) -> None:
    body = _subscription(topic, f"{env.http.url}/hook/{_n()}", filters, content)
    with TestClient(create_app(env.rig.settings)) as api:
        answer = api.post("/fhir/Subscription", json=body, headers=HEADERS)
        assert answer.status_code == 422, answer.text
        [issue] = answer.json()["issue"]
        assert issue["expression"] == ["Subscription.criteria"]
        good = _subscription(CANCELLED, f"{env.http.url}/hook/{_n()}", [], "id-only")
        accepted = api.post("/fhir/Subscription", json=good, headers=HEADERS)
        assert accepted.status_code == 201, accepted.text


def test_capability_statement_lists_the_topics(env: Running) -> None:
    with TestClient(create_app(env.rig.settings)) as api:
        statement = api.get("/fhir/metadata").json()
    [subscription] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    offered = [
        e["valueCanonical"] for e in subscription["extension"] if e["url"] == TOPIC_CANONICAL_EXT
    ]
    assert offered == [topic.url for topic in TOPICS]
    assert any(o["name"] == "status" for o in subscription["operation"])
