"""Authorization code + PKCE through the login and consent forms, and its refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from joserfc import jwk, jwt

from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    BASE,
    PASSWORD,
    REDIRECT,
    add_client,
    add_user,
    auth_app,
    authorize_params,
    bearer,
    call,
    code_of,
    components,
    exchange,
    log_in_and_consent,
    login_form,
    login_token,
    new_patient,
    pkce,
)

SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs patient/Appointment.cruds"


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


@pytest.fixture(scope="module")
def alice(client: TestClient) -> str:
    patient_id = new_patient(client, "Alice")
    add_user(client, "alice", "patient", f"Patient/{patient_id}", email="alice@example.org")
    add_client(client, "mobile", "public", SCOPE)
    add_client(
        client,
        "legacy",
        "confidential",
        "launch/patient patient/*.read",
        secret="s3cret-value-123",
        require_pkce=False,
    )
    return patient_id


def test_standalone_patient_launch(client: TestClient, alice: str) -> None:
    body = login_token(client, "mobile", "alice", SCOPE)
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert body["patient"] == alice
    assert body["fhirUser"] == f"{BASE}/Patient/{alice}"
    granted = body["scope"].split()
    for scope in ("launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs"):
        assert scope in granted
    assert body["refresh_token"]
    keys = jwk.KeySet.import_key_set(client.get(f"{AUTH}/jwks").json())
    id_token = jwt.decode(body["id_token"], keys, algorithms=["RS256"])
    assert id_token.header["alg"] == "RS256" and id_token.header["kid"]
    assert id_token.claims["iss"] == BASE and id_token.claims["aud"] == "mobile"
    assert id_token.claims["fhirUser"] == body["fhirUser"]
    me = client.get(f"{BASE}/Patient/{alice}", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == alice


def test_token_response_is_not_cached(client: TestClient, alice: str) -> None:
    verifier, challenge = pkce()
    params = authorize_params("mobile", "patient/Patient.rs launch/patient", challenge)
    response = exchange(
        client,
        code_of(log_in_and_consent(client, params, "alice"), params["state"]),
        "mobile",
        verifier,
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert "refresh_token" not in response.json()  # no offline_access / online_access asked


def test_authorize_by_post(client: TestClient, alice: str) -> None:
    _, challenge = pkce()
    params = authorize_params("mobile", "patient/Patient.rs launch/patient", challenge)
    page = client.post(f"{AUTH}/authorize", data=params)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_deny_redirects_with_access_denied(client: TestClient, alice: str) -> None:
    _, challenge = pkce()
    params = authorize_params("mobile", "patient/Patient.rs", challenge)
    location = log_in_and_consent(client, params, "alice", decision="deny")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["access_denied"] and query["state"] == [params["state"]]


def test_wrong_password_shows_the_error_by_the_fields(client: TestClient, alice: str) -> None:
    _, challenge = pkce()
    params = authorize_params("mobile", "patient/Patient.rs", challenge)
    page = login_form(client, params, "alice", "not-the-password")
    assert 'role="alert"' in page.text and 'aria-describedby="login-error"' in page.text
    assert "ticket" not in page.text


def test_consent_lists_scopes_in_plain_words(client: TestClient, alice: str) -> None:
    _, challenge = pkce()
    params = authorize_params("mobile", "patient/Appointment.rs offline_access", challenge)
    page = login_form(client, params, "alice", "blue-harbour-lantern-42")
    assert "Read, search the patient&#39;s Appointment records" in page.text
    assert "Keep access after you close it" in page.text


def test_every_registered_scope_counts_and_consent_shows_the_grant(
    client: TestClient, alice: str
) -> None:
    """Registered `patient/*.rs patient/Appointment.cruds`: asking for both grants the
    booking scope (the first registered scope that covers a type used to win)."""
    _, challenge = pkce()
    asked = "launch/patient patient/*.rs patient/Appointment.cruds"
    params = authorize_params("mobile", asked, challenge)
    page = login_form(client, params, "alice", PASSWORD)
    assert "Create, read, update, delete, search the patient&#39;s Appointment records" in page.text
    body = login_token(client, "mobile", "alice", asked)
    assert set(body["scope"].split()) == set(asked.split())


@pytest.mark.parametrize(
    ("verifier_kind", "error"),
    [("missing", "invalid_request"), ("wrong", "invalid_grant")],
)
def test_bad_pkce_verifier_is_refused(
    client: TestClient, alice: str, verifier_kind: str, error: str
) -> None:
    verifier, challenge = pkce()
    params = authorize_params("mobile", "patient/Patient.rs", challenge)
    code = code_of(log_in_and_consent(client, params, "alice"), params["state"])
    sent = None if verifier_kind == "missing" else pkce()[0]
    response = exchange(client, code, "mobile", sent)
    assert response.status_code == 400 and response.json()["error"] == error
    # the code is single-use: even the right verifier cannot use it now
    again = exchange(client, code, "mobile", verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "pkce_params",
    [
        {},  # no PKCE at all
        {"code_challenge": "x" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "x" * 43},  # method missing means plain
        {"code_challenge": "", "code_challenge_method": "S256"},
    ],
)
def test_authorize_without_s256_pkce_is_refused(
    client: TestClient, alice: str, pkce_params: dict[str, str]
) -> None:
    params = authorize_params("mobile", "patient/Patient.rs", None, **pkce_params)
    response = client.get(f"{AUTH}/authorize", params=params, follow_redirects=False)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == [params["state"]]


def test_legacy_confidential_client_without_pkce(client: TestClient, alice: str) -> None:
    params = authorize_params("legacy", "launch/patient patient/*.read", None)
    code = code_of(log_in_and_consent(client, params, "alice"), params["state"])
    response = exchange(client, code, "legacy", None, auth=("legacy", "s3cret-value-123"))
    assert response.status_code == 200, response.text
    assert response.json()["patient"] == alice


def test_aud_mismatch_is_refused(client: TestClient, alice: str) -> None:
    _, challenge = pkce()
    params = authorize_params(
        "mobile", "patient/Patient.rs", challenge, aud="https://other.example/fhir"
    )
    response = client.get(f"{AUTH}/authorize", params=params, follow_redirects=False)
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_request"]


@pytest.mark.parametrize(
    "redirect", ["http://evil.example/callback", REDIRECT + "/extra", REDIRECT.upper()]
)
def test_unregistered_redirect_uri_gets_an_error_page(
    client: TestClient, alice: str, redirect: str
) -> None:
    _, challenge = pkce()
    params = authorize_params("mobile", "patient/Patient.rs", challenge, redirect_uri=redirect)
    response = client.get(f"{AUTH}/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]


def test_unknown_client_gets_an_error_page(client: TestClient) -> None:
    _, challenge = pkce()
    params = authorize_params("nobody", "patient/Patient.rs", challenge)
    response = client.get(f"{AUTH}/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400 and "location" not in response.headers


def test_code_for_another_redirect_uri_or_client_is_refused(client: TestClient, alice: str) -> None:
    verifier, challenge = pkce()
    params = authorize_params("mobile", "patient/Patient.rs", challenge)
    code = code_of(log_in_and_consent(client, params, "alice"), params["state"])
    response = exchange(client, code, "mobile", verifier, data={"redirect_uri": REDIRECT + "x"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_patient_user_cannot_get_user_scopes(client: TestClient, alice: str) -> None:
    add_client(client, "wide", "public", "user/*.rs patient/*.rs launch/patient")
    body = login_token(client, "wide", "alice", "user/*.rs patient/*.rs launch/patient")
    assert "user/*.rs" not in body["scope"].split()
    assert "patient/*.rs" in body["scope"].split()


def test_patient_cannot_borrow_another_patients_launch(client: TestClient, alice: str) -> None:
    other = new_patient(client, "Mallory")
    launch = call(client, components(client).launches.create, other, "someone")
    add_client(client, "ehr-app", "public", "launch patient/*.rs")
    verifier, challenge = pkce()
    params = authorize_params("ehr-app", "launch patient/*.rs", challenge, launch=launch)
    consent = login_form(client, params, "alice", PASSWORD)
    assert "Read, search the patient" in consent.text
    location = log_in_and_consent(client, params, "alice")
    body = exchange(client, code_of(location, params["state"]), "ehr-app", verifier).json()
    assert body["patient"] == alice
    other_appointments = client.get(f"{BASE}/Patient/{other}", headers=bearer(body["access_token"]))
    assert other_appointments.status_code == 404


def test_replayed_code_revokes_what_it_gave(client: TestClient, alice: str) -> None:
    verifier, challenge = pkce()
    params = authorize_params("mobile", "launch/patient patient/*.rs offline_access", challenge)
    code = code_of(log_in_and_consent(client, params, "alice"), params["state"])
    first = exchange(client, code, "mobile", verifier)
    assert first.status_code == 200
    token = first.json()["access_token"]
    assert client.get(f"{BASE}/Patient/{alice}", headers=bearer(token)).status_code == 200
    replay = exchange(client, code, "mobile", verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert client.get(f"{BASE}/Patient/{alice}", headers=bearer(token)).status_code == 401
    refreshed = client.post(
        f"{AUTH}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": "mobile",
        },
    )
    assert refreshed.status_code == 400
