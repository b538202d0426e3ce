from fastapi.testclient import TestClient

from tests.conftest import FHIR_JSON, patient


def test_create_then_read(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient(), headers={"content-type": FHIR_JSON})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    got = client.get(f"/fhir/Patient/{rid}")
    assert got.status_code == 200
    assert got.json()["name"][0]["family"] == "Doe"
    assert got.headers["etag"] == 'W/"1"'
