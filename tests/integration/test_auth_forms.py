"""The sign-in and consent forms can only be posted from their own page, once.

A CSRF token in the form must match the cookie set with it, a foreign
`Origin` is refused, a consent form cannot be replayed, and an authorization
request without `state` is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    PASSWORD,
    REDIRECT,
    add_client,
    add_user,
    auth_app,
    authorize_params,
    csrf_of,
    login_form,
    new_patient,
    pkce,
    ticket_of,
)

SCOPE = "launch/patient patient/*.rs"


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for app in auth_app(settings_factory, rate_limit_per_minute=1000):
        add_client(app, "mobile", "public", SCOPE)
        add_user(app, "fran", "patient", f"Patient/{new_patient(app, 'Fran')}")
        yield app


def _params() -> dict[str, str]:
    return authorize_params("mobile", SCOPE, pkce()[1])


def _consented(response: object) -> bool:
    return 'value="allow"' in getattr(response, "text", "")


def test_a_login_post_without_the_forms_token_is_refused(client: TestClient) -> None:
    params = _params()
    client.get(f"{AUTH}/authorize", params=params)  # the cookie alone is not enough
    form = {**params, "step": "login", "username": "fran", "password": PASSWORD}
    for sent in ({}, {"csrf": "A" * 43}):
        refused = client.post(f"{AUTH}/authorize", data=form | sent)
        assert refused.status_code == 403 and not _consented(refused)
    assert _consented(login_form(client, params, "fran", PASSWORD))


def test_a_post_from_another_origin_is_refused(client: TestClient) -> None:
    params = _params()
    page = client.get(f"{AUTH}/authorize", params=params)
    form = {
        **params,
        "step": "login",
        "username": "fran",
        "password": PASSWORD,
        "csrf": csrf_of(page.text),
    }
    foreign = client.post(
        f"{AUTH}/authorize", data=form, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and not _consented(foreign)
    own = client.post(f"{AUTH}/authorize", data=form, headers={"Origin": "http://testserver"})
    assert _consented(own)


def test_a_consent_form_can_be_used_once(client: TestClient) -> None:
    params = _params()
    consent = login_form(client, params, "fran", PASSWORD)
    form = {
        **params,
        "step": "consent",
        "ticket": ticket_of(consent.text),
        "decision": "allow",
        "csrf": csrf_of(consent.text),
    }
    first = client.post(f"{AUTH}/authorize", data=form, follow_redirects=False)
    assert first.status_code == 302 and "code=" in first.headers["location"]
    again = client.post(f"{AUTH}/authorize", data=form, follow_redirects=False)
    assert again.status_code == 200 and "already used" in again.text


def test_state_is_required(client: TestClient) -> None:
    params = _params()
    del params["state"]
    answer = client.get(f"{AUTH}/authorize", params=params, follow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT)
    assert parse_qs(urlsplit(location).query)["error"] == ["invalid_request"]
