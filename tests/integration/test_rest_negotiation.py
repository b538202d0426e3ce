"""Content negotiation and output shaping: `_format`, Accept, `_pretty`, `_summary`, `_elements`."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import FHIR_JSON, patient
from tests.integration.rest_support import JSON_HEADERS, assert_outcome, create, store_state

SUBSETTED = "SUBSETTED"


def _tags(resource: dict[str, object]) -> list[str]:
    meta = resource.get("meta", {})
    assert isinstance(meta, dict)
    return [t["code"] for t in meta.get("tag", [])]


@pytest.mark.parametrize(
    ("fmt", "accept", "media"),
    [
        (None, None, FHIR_JSON),
        ("json", None, FHIR_JSON),
        ("application/fhir+json", None, FHIR_JSON),
        ("application/json", None, "application/json"),
        (None, "application/json", "application/json"),
        (None, "application/fhir+json", FHIR_JSON),
        (None, "*/*", FHIR_JSON),
        (None, "text/html,application/xhtml+xml,*/*;q=0.8", FHIR_JSON),
    ],
)
def test_json_media_types(
    client: TestClient, fmt: str | None, accept: str | None, media: str
) -> None:
    created = create(client)
    headers = {"accept": accept} if accept else {}
    params = {"_format": fmt} if fmt else {}
    response = client.get(f"/fhir/Patient/{created['id']}", params=params, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media}; charset=utf-8"


@pytest.mark.parametrize(
    ("fmt", "accept"),
    [
        ("xml", None),
        ("application/fhir+xml", None),
        ("turtle", None),
        (None, "application/fhir+xml"),
        (None, "application/xml"),
    ],
)
def test_xml_is_406_with_outcome(client: TestClient, fmt: str | None, accept: str | None) -> None:
    created = create(client)
    headers = {"accept": accept} if accept else {}
    params = {"_format": fmt} if fmt else {}
    response = client.get(f"/fhir/Patient/{created['id']}", params=params, headers=headers)
    assert_outcome(response, 406)
    assert_outcome(client.get("/fhir/metadata", params=params, headers=headers), 406)


def test_xml_accept_on_create_writes_nothing(client: TestClient) -> None:
    before = store_state(client)
    response = client.post(
        "/fhir/Patient",
        content=orjson.dumps(patient()),
        headers={**JSON_HEADERS, "accept": "application/fhir+xml"},
    )
    assert_outcome(response, 406)
    assert store_state(client) == before


@pytest.mark.parametrize(
    ("sent", "accept", "media"),
    [
        ("application/json", None, "application/json"),
        ("application/json", "*/*", "application/json"),
        ("application/json", FHIR_JSON, FHIR_JSON),
        (FHIR_JSON, None, FHIR_JSON),
        (FHIR_JSON, "application/json", "application/json"),
        (FHIR_JSON, "application/json, application/fhir+json", "application/json"),
    ],
)
def test_request_content_type_echoed_without_preference(
    client: TestClient, sent: str, accept: str | None, media: str
) -> None:
    headers = {"content-type": sent, **({"accept": accept} if accept else {})}
    response = client.post("/fhir/Patient", content=orjson.dumps(patient()), headers=headers)
    assert response.status_code == 201
    assert response.headers["content-type"] == f"{media}; charset=utf-8"


def test_application_json_request_body_accepted(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=orjson.dumps(patient()),
        headers={"content-type": "application/json", "accept": "application/json"},
    )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")


def test_pretty(client: TestClient) -> None:
    created = create(client)
    url = f"/fhir/Patient/{created['id']}"
    assert b"\n  " in client.get(url, params={"_pretty": "true"}).content
    assert b"\n" not in client.get(url).content


def test_summary_true_keeps_summary_elements(client: TestClient) -> None:
    created = create(client, patient(text={"status": "generated", "div": "<div>x</div>"}))
    shaped = client.get(f"/fhir/Patient/{created['id']}", params={"_summary": "true"}).json()
    assert "name" in shaped and "gender" in shaped and "birthDate" in shaped
    assert "text" not in shaped
    assert SUBSETTED in _tags(shaped)


def test_summary_text_keeps_text_and_mandatory(client: TestClient) -> None:
    body = {
        "resourceType": "Slot",
        "schedule": {"reference": "Schedule/s"},
        "status": "free",
        "start": "2030-01-07T09:00:00Z",
        "end": "2030-01-07T09:30:00Z",
        "comment": "front desk",
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Slot</div>',
        },
    }
    created = create(client, body)
    shaped = client.get(f"/fhir/Slot/{created['id']}", params={"_summary": "text"}).json()
    assert set(shaped) == {
        "resourceType",
        "id",
        "meta",
        "text",
        "schedule",
        "status",
        "start",
        "end",
    }
    assert SUBSETTED in _tags(shaped)


def test_summary_data_drops_text_only(client: TestClient) -> None:
    created = create(client, patient(text={"status": "generated", "div": "<div>x</div>"}))
    shaped = client.get(f"/fhir/Patient/{created['id']}", params={"_summary": "data"}).json()
    assert "text" not in shaped and "name" in shaped and "birthDate" in shaped
    assert SUBSETTED in _tags(shaped)


def test_summary_false_is_whole_resource(client: TestClient) -> None:
    created = create(client)
    shaped = client.get(f"/fhir/Patient/{created['id']}", params={"_summary": "false"}).json()
    assert shaped == created


def test_summary_count_on_history_has_total_only(client: TestClient) -> None:
    create(client)
    shaped = client.get("/fhir/Patient/_history", params={"_summary": "count"}).json()
    assert shaped["total"] >= 1
    assert not shaped.get("entry")


def test_elements_selects_and_marks_subsetted(client: TestClient) -> None:
    created = create(client)
    shaped = client.get(f"/fhir/Patient/{created['id']}", params={"_elements": "gender"}).json()
    assert set(shaped) == {"resourceType", "id", "meta", "gender"}
    assert SUBSETTED in _tags(shaped)
    history = client.get(
        f"/fhir/Patient/{created['id']}/_history", params={"_elements": "birthDate"}
    ).json()
    assert set(history["entry"][0]["resource"]) == {"resourceType", "id", "meta", "birthDate"}


def test_bad_summary_is_400_and_writes_nothing(client: TestClient) -> None:
    created = create(client)
    assert_outcome(client.get(f"/fhir/Patient/{created['id']}?_summary=maybe"), 400, "_summary")
    assert_outcome(client.get("/fhir/metadata?_summary=maybe"), 400, "_summary")
    before = store_state(client)
    response = client.post(
        "/fhir/Patient?_summary=maybe", content=orjson.dumps(patient()), headers=JSON_HEADERS
    )
    assert_outcome(response, 400, "_summary")
    assert store_state(client) == before


def test_head_has_headers_but_no_body(client: TestClient) -> None:
    created = create(client)
    response = client.head(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'
