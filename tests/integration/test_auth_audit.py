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
    audit_events,
    auth_app,
    login_token,
    new_patient,
)

EVENTS = [
    "login",
    "token-issued",
    "token-refreshed",
    "token-revoked",
    "token-refused",
    "access-denied",
]


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
    assert {"110122", "token-issued", "token-refreshed", "token-revoked"} <= {
        event["subtype"][0]["code"] for event in audit_events(client)
    }


def test_refused_token_requests_are_audited(client: TestClient) -> None:
    """A replayed refresh token is a security event: the refusal is recorded with its reason."""
    add_user(client, "eve", "patient", f"Patient/{new_patient(client, 'Eve')}")
    add_client(client, "app2", "public", "launch/patient patient/*.rs offline_access")
    body = login_token(client, "app2", "eve", "launch/patient patient/*.rs offline_access")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": "app2",
    }
    assert client.post(f"{AUTH}/token", data=form).status_code == 200
    replay = client.post(f"{AUTH}/token", data=form)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refused = [
        e
        for e in audit_events(client)
        if e["subtype"][0]["code"] == "token-refused"
        and e["agent"][-1]["who"]["identifier"]["value"] == "app2"
    ]
    assert len(refused) == 1
    assert refused[0]["outcome"] == "4"
    assert refused[0]["outcomeDesc"].startswith("invalid_grant")
    assert body["refresh_token"] not in str(refused[0])
