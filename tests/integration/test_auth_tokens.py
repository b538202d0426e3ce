"""Refresh rotation and reuse detection, narrowing, introspection and revocation."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.auth.keys import load_keyring, rotate
from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    BASE,
    PASSWORD,
    add_client,
    add_user,
    auth_app,
    authorize_params,
    bearer,
    call,
    code_of,
    components,
    csrf_of,
    exchange,
    log_in_and_consent,
    login_token,
    mint,
    new_patient,
    pkce,
)

SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


@pytest.fixture(scope="module")
def carol(client: TestClient) -> str:
    patient = new_patient(client, "Carol")
    add_user(client, "carol", "patient", f"Patient/{patient}")
    add_client(client, "app", "public", SCOPE)
    add_client(
        client,
        "rs",
        "confidential",
        "user/*.rs",
        secret="resource-server-secret",
        resource_server=True,
    )
    add_client(client, "nosy", "confidential", "user/*.rs", secret="nosy-client-secret")
    # The client `mint` issues tokens to: a resource server too (the bearer-caller case).
    add_client(
        client, "test-client", "confidential", "user/*.rs", secret="x" * 20, resource_server=True
    )
    return patient


def refresh(client: TestClient, token: str, **extra: str) -> Any:
    return client.post(
        f"{AUTH}/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "app"} | extra,
    )


def introspect(client: TestClient, token: str) -> dict[str, Any]:
    response = client.post(
        f"{AUTH}/introspect", data={"token": token}, auth=("rs", "resource-server-secret")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_refresh_rotates_and_reuse_kills_the_family(client: TestClient, carol: str) -> None:
    first = login_token(client, "app", "carol", SCOPE)
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["patient"] == carol and isinstance(body["expires_in"], int)
    third = refresh(client, body["refresh_token"])  # clients refresh twice in a row
    assert third.status_code == 200
    latest = third.json()
    replay = refresh(client, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # the whole family is dead now: the newest refresh token and its access token too
    assert refresh(client, latest["refresh_token"]).status_code == 400
    assert (
        client.get(f"{BASE}/Patient/{carol}", headers=bearer(latest["access_token"])).status_code
        == 401
    )


def test_refresh_may_narrow_never_widen(client: TestClient, carol: str) -> None:
    first = login_token(client, "app", "carol", SCOPE)
    narrower = refresh(
        client, first["refresh_token"], scope="patient/Patient.rs offline_access launch/patient"
    )
    assert narrower.status_code == 200, narrower.text
    assert set(narrower.json()["scope"].split()) == {
        "patient/Patient.rs",
        "offline_access",
        "launch/patient",
    }
    wider = refresh(client, narrower.json()["refresh_token"], scope="user/*.cruds")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_refresh_by_another_client_is_refused(client: TestClient, carol: str) -> None:
    first = login_token(client, "app", "carol", SCOPE)
    add_client(client, "other-app", "public", SCOPE)
    stolen = client.post(
        f"{AUTH}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "other-app",
        },
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_a_public_app_refreshes_without_client_id(client: TestClient, carol: str) -> None:
    """The SMART JS client sends only grant_type and refresh_token: still rotated, and a
    token presented again (or by another client) is still refused."""
    first = login_token(client, "app", "carol", SCOPE)
    bare = {"grant_type": "refresh_token"}
    second = client.post(f"{AUTH}/token", data=bare | {"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    assert client.get(f"{BASE}/Patient/{carol}", headers=bearer(second.json()["access_token"]))
    replay = client.post(f"{AUTH}/token", data=bare | {"refresh_token": first["refresh_token"]})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh(client, rotated).status_code == 400  # the family died with the replay


def test_a_confidential_token_still_needs_its_client(client: TestClient, carol: str) -> None:
    add_client(client, "conf", "confidential", SCOPE, secret="conf-secret-value")
    verifier, challenge = pkce()
    params = authorize_params("conf", SCOPE, challenge)
    code = code_of(log_in_and_consent(client, params, "carol"), params["state"])
    issued = exchange(client, code, "conf", verifier, auth=("conf", "conf-secret-value"))
    first = issued.json()
    bare = client.post(
        f"{AUTH}/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"


def test_introspection(client: TestClient, carol: str) -> None:
    body = login_token(client, "app", "carol", SCOPE)
    info = introspect(client, body["access_token"])
    assert info["active"] is True
    assert info["client_id"] == "app" and info["sub"] == "carol" and info["patient"] == carol
    assert info["scope"] == body["scope"] and info["iss"] == BASE
    assert info["fhirUser"] == f"{BASE}/Patient/{carol}" and isinstance(info["exp"], int)
    assert introspect(client, body["refresh_token"])["active"] is True
    assert introspect(client, "no-such-token") == {"active": False}


def test_introspection_with_a_bearer_token(client: TestClient, carol: str) -> None:
    body = login_token(client, "app", "carol", SCOPE)
    caller = bearer(mint(client, "system/*.rs"))
    response = client.post(
        f"{AUTH}/introspect", data={"token": body["access_token"]}, headers=caller
    )
    assert response.status_code == 200 and response.json()["active"] is True
    bad = client.post(
        f"{AUTH}/introspect", data={"token": body["access_token"]}, headers=bearer("junk")
    )
    assert bad.status_code == 401
    anonymous = client.post(f"{AUTH}/introspect", data={"token": body["access_token"]})
    assert anonymous.status_code == 401


def test_a_client_introspects_only_its_own_tokens(client: TestClient, carol: str) -> None:
    """Unless it is registered as a resource server (`rs`), a client learns nothing about
    another client's tokens: the answer is the one for an unknown token."""
    body = login_token(client, "app", "carol", SCOPE)
    for token in (body["access_token"], body["refresh_token"]):
        nosy = client.post(
            f"{AUTH}/introspect", data={"token": token}, auth=("nosy", "nosy-client-secret")
        )
        assert nosy.status_code == 200 and nosy.json() == {"active": False}
        assert introspect(client, token)["active"] is True
    own = bearer(body["access_token"])  # the app's own token asks about itself, then another's
    mine = client.post(f"{AUTH}/introspect", data={"token": body["access_token"]}, headers=own)
    assert mine.json()["active"] is True and mine.json()["client_id"] == "app"
    other = mint(client, "user/*.rs")
    theirs = client.post(f"{AUTH}/introspect", data={"token": other}, headers=own)
    assert theirs.status_code == 200 and theirs.json() == {"active": False}


def test_revocation_kills_access_and_refresh(client: TestClient, carol: str) -> None:
    body = login_token(client, "app", "carol", SCOPE)
    response = client.post(
        f"{AUTH}/revoke", data={"token": body["access_token"], "client_id": "app"}
    )
    assert response.status_code == 200
    assert (
        client.get(f"{BASE}/Patient/{carol}", headers=bearer(body["access_token"])).status_code
        == 401
    )
    assert introspect(client, body["access_token"]) == {"active": False}
    assert introspect(client, body["refresh_token"]) == {"active": False}
    assert refresh(client, body["refresh_token"]).status_code == 400


def test_revoking_a_refresh_token_and_unknown_tokens(client: TestClient, carol: str) -> None:
    body = login_token(client, "app", "carol", SCOPE)
    ok = client.post(
        f"{AUTH}/revoke",
        data={
            "token": body["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": "app",
        },
    )
    assert ok.status_code == 200
    assert refresh(client, body["refresh_token"]).status_code == 400
    unknown = client.post(f"{AUTH}/revoke", data={"token": "never-issued", "client_id": "app"})
    assert unknown.status_code == 200


def test_password_change_revokes_refresh_tokens(client: TestClient, carol: str) -> None:
    body = login_token(client, "app", "carol", SCOPE)
    call(client, components(client).accounts.set_password, "carol", "a-brand-new-passphrase-7")
    assert refresh(client, body["refresh_token"]).status_code == 400
    call(client, components(client).accounts.set_password, "carol", "blue-harbour-lantern-42")


def test_manage_page_lists_and_stops_app_access(client: TestClient, carol: str) -> None:
    body = login_token(client, "app", "carol", SCOPE)
    opened = client.get(f"{AUTH}/manage")
    assert opened.status_code == 200
    csrf = {"csrf": csrf_of(opened.text)}
    login = {"step": "login", "username": "carol"}
    no_token = client.post(f"{AUTH}/manage", data=login | {"password": PASSWORD})
    assert no_token.status_code == 403 and "ticket" not in no_token.text  # no CSRF field
    wrong = client.post(f"{AUTH}/manage", data=login | csrf | {"password": "nope-nope-nope"})
    assert 'role="alert"' in wrong.text and "ticket" not in wrong.text
    listing = client.post(f"{AUTH}/manage", data=login | csrf | {"password": PASSWORD})
    assert listing.status_code == 200 and "Stop app" in listing.text
    ticket = re.search(r'name="ticket" value="([^"]+)"', listing.text)
    families = re.findall(r'name="family" value="([^"]+)"', listing.text)
    assert ticket and families
    forged = client.post(
        f"{AUTH}/manage",
        data=csrf | {"step": "revoke", "ticket": "x|1|y|z|w", "family": families[0]},
    )
    assert "sign in again" in forged.text
    for family in families:
        client.post(
            f"{AUTH}/manage",
            data=csrf | {"step": "revoke", "ticket": ticket.group(1), "family": family},
        )
    assert refresh(client, body["refresh_token"]).status_code == 400
    assert (
        client.get(f"{BASE}/Patient/{carol}", headers=bearer(body["access_token"])).status_code
        == 401
    )


def test_housekeeping_purges_only_expired_records(client: TestClient, carol: str) -> None:
    store = components(client).store
    call(client, store.save_refresh, "stale-one", {"family": "f-old", "expires_at": 1, "sub": "x"})
    call(client, store.save_refresh, "live-one", {"family": "f-new", "expires_at": 4102444800})
    call(client, components(client).housekeeping, 0.0)
    assert call(client, store.refresh_token, "stale-one") is None
    assert call(client, store.refresh_token, "live-one") is not None


def test_a_token_checked_before_is_refused_once_its_key_is_gone(
    settings_factory: Callable[..., Settings],
) -> None:
    """The API keeps the claims of tokens whose signature it checked (`recent.py`), but only
    while the key that signed them is still held: a dropped key ends them at once."""
    fresh = auth_app(settings_factory)
    app = next(fresh)
    try:
        patient = new_patient(app, "Keyed")
        token = mint(app, "patient/*.rs", patient=patient)
        assert app.get(f"{BASE}/Patient/{patient}", headers=bearer(token)).status_code == 200
        tokens = app.app.state.auth.tokens  # type: ignore[attr-defined]
        old = set(tokens.keyring.public)

        async def drop_old_keys() -> None:
            await rotate(tokens.store, tokens.settings)
            await tokens.store.drop_keys_retired_before(int(time.time()) + 1)
            tokens.keyring = await load_keyring(tokens.store, tokens.settings.secret_key)

        call(app, drop_old_keys)
        assert not old & set(tokens.keyring.public)
        refused = app.get(f"{BASE}/Patient/{patient}", headers=bearer(token))
        assert refused.status_code == 401
        renewed = mint(app, "patient/*.rs", patient=patient)
        assert app.get(f"{BASE}/Patient/{patient}", headers=bearer(renewed)).status_code == 200
    finally:
        fresh.close()
