"""Accounts resist guessing: parallel failures all count, and refusals look alike.

The lockout counter is an atomic increment in the store, so N wrong passwords
sent at once lock the account as surely as N sent one after another. A refused
login, registration or reset answers with the same words and does the same
argon2 work whether or not the user name exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.auth import registration, users
from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    PASSWORD,
    add_client,
    add_user,
    auth_app,
    authorize_params,
    call,
    components,
    login_form,
    new_patient,
    pkce,
    post_form,
)

FAILURES = 5


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory, login_max_failures=FAILURES, rate_limit_per_minute=1000)


@pytest.fixture(scope="module")
def portal(client: TestClient) -> str:
    add_client(client, "mobile", "public", "launch/patient patient/*.rs")
    return "mobile"


def _login(client: TestClient, username: str, password: str) -> Any:
    _, challenge = pkce()
    params = authorize_params("mobile", "launch/patient patient/*.rs", challenge)
    return login_form(client, params, username, password)


def _signed_in(response: Any) -> bool:
    return 'value="allow"' in response.text


def test_parallel_wrong_passwords_all_count_towards_the_lockout(
    client: TestClient, portal: str
) -> None:
    add_user(client, "racer", "patient", f"Patient/{new_patient(client, 'Race')}")
    _login(client, "nobody-at-all", "x")  # the browser holds its CSRF cookie before the race
    with ThreadPoolExecutor(FAILURES) as pool:
        answers = list(
            pool.map(lambda _: _login(client, "racer", "wrong-password-1"), range(FAILURES))
        )
    assert not any(_signed_in(a) for a in answers)
    locked = _login(client, "racer", PASSWORD)
    assert locked.status_code == 200 and not _signed_in(locked)  # locked: the right one is refused
    doc = call(client, components(client).store.user, "racer")
    assert doc["locked_until"] > 0


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every argon2 check the login makes (the real check runs; this only counts it)."""
    seen: list[str | None] = []
    real = users.verify_secret

    def counted(hashed: str | None, secret: str) -> bool:
        seen.append(hashed)
        return real(hashed, secret)

    monkeypatch.setattr(users, "verify_secret", counted)
    return seen


def test_unknown_disabled_and_locked_accounts_cost_a_real_hash_check(
    client: TestClient, portal: str, verifications: list[str | None]
) -> None:
    add_user(client, "known", "patient", f"Patient/{new_patient(client, 'Known')}")
    add_user(client, "gone", "patient", f"Patient/{new_patient(client, 'Gone')}")
    add_user(client, "shut", "patient", f"Patient/{new_patient(client, 'Shut')}")
    call(client, components(client).accounts.disable, "gone")
    call(client, components(client).store.update_user, "shut", {"locked_until": 2**40})
    answers = {
        name: _login(client, name, "wrong-password-1")
        for name in ("known", "nobody-by-this-name", "gone", "shut")
    }
    assert len(verifications) == 4 and all(verifications)  # one argon2 check each
    alerts = {re.search(r'role="alert">([^<]*)<', a.text).group(1) for a in answers.values()}  # type: ignore[union-attr]
    assert alerts == {"The user name or password is wrong, or the account is locked."}
    assert {a.status_code for a in answers.values()} == {200}


def test_registration_answers_the_same_for_a_taken_name(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real = registration.hash_secret

    async def counted(secret: str, settings: Settings) -> str:
        hashed.append(secret)
        return await real(secret, settings)

    monkeypatch.setattr(registration, "hash_secret", counted)
    add_user(client, "taken", "patient", f"Patient/{new_patient(client, 'Taken')}")
    form = {
        "given": "Some",
        "family": "One",
        "birthDate": "1990-01-01",
        "email": "some@example.org",
        "password": "harbour-lights-2030x",
    }
    store = client.app.state.services.store  # type: ignore[attr-defined]
    patients_before = call(client, store.collection("Patient").count_documents, {})
    taken = post_form(client, f"{AUTH}/register", form | {"username": "taken"})
    assert hashed == ["harbour-lights-2030x"]  # the work a new account would cost
    assert call(client, store.collection("Patient").count_documents, {}) == patients_before
    free = post_form(client, f"{AUTH}/register", form | {"username": "free-name"})
    assert taken.status_code == free.status_code == 200
    assert taken.text == free.text
    assert "taken" not in taken.text.lower()
    assert call(client, components(client).accounts.get, "free-name") is not None


def test_a_refused_registration_stores_no_patient(client: TestClient) -> None:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    before = call(client, store.collection("Patient").count_documents, {})
    form = {
        "given": "Long",
        "family": "Name",
        "birthDate": "1990-01-01",
        "email": "long@example.org",
        "username": "n" * 101,
        "password": "harbour-lights-2030x",
    }
    refused = post_form(client, f"{AUTH}/register", form)
    assert refused.status_code == 400 and "user name" in refused.text
    assert call(client, store.collection("Patient").count_documents, {}) == before
