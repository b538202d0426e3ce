"""read, vread, create, update, patch and delete against the embedded store."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import BASE, patient
from tests.integration.rest_support import (
    JSON_HEADERS,
    appointment,
    assert_outcome,
    both_modes_client,
    create,
    put,
    store_state,
)

client = both_modes_client
PATCH_HEADERS = {"content-type": "application/json-patch+json"}


def _patch(client: TestClient, url: str, ops: list[Any], **headers: str) -> Response:
    response: Response = client.patch(
        url, content=orjson.dumps(ops), headers={**PATCH_HEADERS, **headers}
    )
    return response


def test_create_assigns_id_and_version_headers(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", content=orjson.dumps(patient(id="client-chosen")), headers=JSON_HEADERS
    )
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == f"{BASE}/Patient/{body['id']}/_history/1"
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert modified.isoformat()[:19] == body["meta"]["lastUpdated"][:19]


def test_read_returns_current_version(client: TestClient) -> None:
    created = create(client)
    got = client.get(f"/fhir/Patient/{created['id']}")
    assert got.status_code == 200
    assert got.json() == created
    assert got.headers["etag"] == 'W/"1"'
    assert "last-modified" in got.headers


def test_read_unknown_id_is_404(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Patient/no-such-id"), 404)


def test_read_malformed_id_is_400(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Patient/bad_id!"), 400, "Resource.id")


def test_update_increments_version_and_vread_keeps_old(client: TestClient) -> None:
    created = create(client)
    changed = {**created, "gender": "male"}
    response = put(client, changed)
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["content-location"].endswith(f"/Patient/{created['id']}/_history/2")
    old = client.get(f"/fhir/Patient/{created['id']}/_history/1")
    assert old.status_code == 200
    assert old.json()["gender"] == "female"
    assert old.headers["etag"] == 'W/"1"'
    assert client.get(f"/fhir/Patient/{created['id']}").json()["gender"] == "male"


def test_vread_unknown_version_is_404(client: TestClient) -> None:
    created = create(client)
    assert_outcome(client.get(f"/fhir/Patient/{created['id']}/_history/7"), 404)
    assert_outcome(client.get(f"/fhir/Patient/{created['id']}/_history/x"), 404)


def test_update_as_create_with_client_id(client: TestClient) -> None:
    response = put(client, patient(id="chosen-1"))
    assert response.status_code == 201
    assert response.headers["location"] == f"{BASE}/Patient/chosen-1/_history/1"
    assert response.json()["meta"]["versionId"] == "1"
    again = put(client, patient(id="chosen-1", gender="other"))
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "2"


def test_update_with_matching_if_match(client: TestClient) -> None:
    created = create(client)
    response = put(client, {**created, "gender": "male"}, **{"if-match": 'W/"1"'})
    assert response.status_code == 200


def test_update_with_stale_if_match_is_412_and_writes_nothing(client: TestClient) -> None:
    created = create(client)
    put(client, {**created, "gender": "male"})
    before = store_state(client)
    response = put(client, {**created, "gender": "other"}, **{"if-match": 'W/"1"'})
    assert_outcome(response, 412)
    assert store_state(client) == before


def test_patch_applies_json_patch(client: TestClient) -> None:
    created = create(client)
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = _patch(client, f"/fhir/Patient/{created['id']}", ops)
    assert response.status_code == 200, response.text
    assert response.json()["gender"] == "male"
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'


def test_patch_may_not_change_id_or_type(client: TestClient) -> None:
    created = create(client)
    url = f"/fhir/Patient/{created['id']}"
    before = store_state(client)
    for ops in (
        [{"op": "replace", "path": "", "value": [1, 2]}],
        [{"op": "replace", "path": "", "value": "Patient"}],
        [{"op": "replace", "path": "/id", "value": "other"}],
        [{"op": "replace", "path": "/resourceType", "value": "Practitioner"}],
        [{"op": "remove", "path": "/id"}],
    ):
        assert_outcome(_patch(client, url, ops), 422)
    assert store_state(client) == before


def test_patch_producing_invalid_resource_is_422(client: TestClient) -> None:
    created = create(client)
    before = store_state(client)
    ops = [{"op": "replace", "path": "/gender", "value": "bogus"}]
    assert_outcome(_patch(client, f"/fhir/Patient/{created['id']}", ops), 422, "Patient.gender")
    assert store_state(client) == before


def test_patch_that_cannot_apply_is_422(client: TestClient) -> None:
    created = create(client)
    before = store_state(client)
    ops = [{"op": "test", "path": "/gender", "value": "male"}]
    assert_outcome(_patch(client, f"/fhir/Patient/{created['id']}", ops), 422)
    bad_shape = client.patch(
        f"/fhir/Patient/{created['id']}", content=b'{"op": "add"}', headers=PATCH_HEADERS
    )
    assert_outcome(bad_shape, 400)
    assert store_state(client) == before


def test_patch_with_stale_if_match_is_412(client: TestClient) -> None:
    created = create(client)
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = _patch(client, f"/fhir/Patient/{created['id']}", ops, **{"if-match": 'W/"9"'})
    assert_outcome(response, 412)


def test_patch_unknown_resource_is_404(client: TestClient) -> None:
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert_outcome(_patch(client, "/fhir/Patient/nobody", ops), 404)


def test_delete_is_logical_and_keeps_history(client: TestClient) -> None:
    created = create(client)
    url = f"/fhir/Patient/{created['id']}"
    deleted = client.delete(url)
    assert deleted.status_code == 200
    assert deleted.headers["etag"] == 'W/"2"'
    assert_outcome(client.get(url), 410)
    assert client.get(f"{url}/_history/1").json()["gender"] == "female"
    assert_outcome(client.get(f"{url}/_history/2"), 410)
    history = client.get(f"{url}/_history").json()
    assert history["total"] == 2
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]


def test_delete_twice_is_harmless_and_update_revives(client: TestClient) -> None:
    created = create(client)
    url = f"/fhir/Patient/{created['id']}"
    assert client.delete(url).status_code == 200
    before = store_state(client)
    assert client.delete(url).status_code == 200
    assert store_state(client) == before
    revived = put(client, created)
    assert revived.status_code == 201
    assert revived.json()["meta"]["versionId"] == "3"


def test_delete_unknown_is_404(client: TestClient) -> None:
    before = store_state(client)
    assert_outcome(client.delete("/fhir/Patient/never-was"), 404)
    assert store_state(client) == before


def test_delete_with_stale_if_match_is_412(client: TestClient) -> None:
    created = create(client)
    before = store_state(client)
    response = client.delete(f"/fhir/Patient/{created['id']}", headers={"if-match": 'W/"5"'})
    assert_outcome(response, 412)
    assert store_state(client) == before


def _round_trip(client: TestClient, resource: dict[str, Any]) -> str:
    created = create(client, resource)
    got = client.get(f"/fhir/{resource['resourceType']}/{created['id']}")
    assert got.status_code == 200
    assert got.json() == created
    return str(created["id"])


def test_every_served_type_round_trips(client: TestClient) -> None:
    doctor = _round_trip(client, {"resourceType": "Practitioner", "name": [{"family": "Who"}]})
    actor = {"reference": f"Practitioner/{doctor}"}
    for resource in (
        {"resourceType": "Organization", "name": "Clinic"},
        {"resourceType": "Location", "name": "Room 1", "status": "active"},
        {"resourceType": "PractitionerRole", "active": True},
        {"resourceType": "HealthcareService", "name": "Physio"},
    ):
        _round_trip(client, resource)
    schedule = _round_trip(client, {"resourceType": "Schedule", "actor": [{"display": "Dr A"}]})
    slot = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{schedule}"},
        "status": "free",
        "start": "2030-01-07T09:00:00Z",
        "end": "2030-01-07T09:30:00Z",
    }
    _round_trip(client, slot)
    booked = _round_trip(client, appointment(participant=[{"actor": actor, "status": "accepted"}]))
    response = {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{booked}"},
        "participantStatus": "accepted",
        "actor": actor,
    }
    _round_trip(client, response)
