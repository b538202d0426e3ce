"""AuditEvents for security events: valid FHIR, and written for each kind of event."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent

from fhir_server.audit.recorder import audit_event
from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    add_client,
    add_user,
    auth_app,
    call,
    login_token,
    new_patient,
)

EVENTS = ["login", "token-issued", "token-refreshed", "token-revoked", "access-denied"]


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("success", [True, False])
def test_audit_events_are_valid_fhir(event: str, success: bool) -> None:
    resource = audit_event(event, success=success, who="u", client_id="c", address="10.0.0.1")
    parsed = AuditEvent.model_validate(resource)
    assert parsed.outcome == ("0" if success else "4")
    assert parsed.subtype and parsed.subtype[0].code


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


def test_token_lifecycle_is_audited(client: TestClient) -> None:
    add_user(client, "dora", "patient", f"Patient/{new_patient(client, 'Dora')}")
    add_client(client, "app", "public", "launch/patient patient/*.rs offline_access")
    body = login_token(client, "app", "dora", "launch/patient patient/*.rs offline_access")
    refreshed = client.post(
        f"{AUTH}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "app",
        },
    )
    assert refreshed.status_code == 200
    client.post(
        f"{AUTH}/revoke", data={"token": refreshed.json()["access_token"], "client_id": "app"}
    )
    store = client.app.state.services.store  # type: ignore[attr-defined]

    async def codes() -> set[str]:
        cursor = store.collection("AuditEvent").find({})
        return {doc["resource"]["subtype"][0]["code"] async for doc in cursor}

    assert {"110122", "token-issued", "token-refreshed", "token-revoked"} <= call(client, codes)
