"""The clinic workspace's foundation against the real app, store and Redis: staff sign in
through `/auth/authorize` as the `clinic` client, land on their role's home, and a patient
(or a portal session) cannot open it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import add_user, call, create
from tests.integration.portal_support import (
    CLINIC,
    PORTAL,
    add_patient_login,
    portal_app,
    portal_csrf,
    portal_sessions,
    query_of,
    sign_in,
    start_sign_in,
)


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for client in portal_app(settings_factory):
        add_patient_login(client, "clinic-pat")
        practitioner = create(client, {"resourceType": "Practitioner", "name": [{"family": "Doc"}]})
        add_user(client, "clinic-doc", "practitioner", f"Practitioner/{practitioner}")
        add_user(client, "clinic-desk", "frontdesk", None)
        add_user(client, "clinic-admin", "admin", None)
        yield client


@pytest.fixture
def browser(app: TestClient) -> TestClient:
    app.cookies.clear()
    return app


def test_visitor_sees_the_start_page_and_signs_in_as_the_clinic_client(browser: TestClient) -> None:
    start = browser.get(f"{CLINIC}/")
    assert start.status_code == 200
    assert "<h1>Clinic workspace</h1>" in start.text
    assert "</title>" in start.text and start.text.count("Clinic workspace") >= 3
    assert 'href="/clinic/sign-in"' in start.text
    query = query_of(start_sign_in(browser, "/clinic/", site=CLINIC))
    assert query["client_id"] == "clinic"
    assert query["redirect_uri"] == f"{CLINIC}/callback"
    assert "user/*.cruds" in query["scope"] and "launch/patient" not in query["scope"]


@pytest.mark.parametrize("username", ["clinic-doc", "clinic-desk", "clinic-admin"])
def test_staff_land_on_their_home_without_a_consent_page(
    browser: TestClient, username: str
) -> None:
    back = sign_in(browser, username, "/clinic/", site=CLINIC)
    assert back.status_code == 303 and back.headers["location"] == "/clinic/"
    home = browser.get(f"{CLINIC}/")
    assert home.status_code == 200
    # A practitioner's home is today's schedule (clinic-provider); the others' the menu page.
    heading = "<h1>Schedule: " if username == "clinic-doc" else "<h1>Clinic workspace</h1>"
    assert heading in home.text
    assert 'aria-label="Workspace"' in home.text  # the role's menu
    assert 'action="/clinic/sign-out"' in home.text
    session = call(
        browser, portal_sessions(browser, "/clinic").load, browser.cookies["clinic_session"]
    )
    role = {"clinic-doc": "practitioner", "clinic-desk": "frontdesk", "clinic-admin": "admin"}
    assert session.tokens.role == role[username]


def test_a_patient_signed_in_to_the_clinic_gets_the_403_page(browser: TestClient) -> None:
    sign_in(browser, "clinic-pat", "/clinic/", site=CLINIC)
    refused = browser.get(f"{CLINIC}/")
    assert refused.status_code == 403
    assert "You cannot see this page" in refused.text
    assert "Workspace" not in refused.text.split("<main", 1)[0]  # no staff menu


def test_a_portal_session_does_not_open_the_clinic(browser: TestClient) -> None:
    sign_in(browser, "clinic-pat")
    assert set(browser.cookies.keys()) >= {"portal_session"}
    assert browser.get(f"{PORTAL}/").status_code == 200
    home = browser.get(f"{CLINIC}/")
    assert home.status_code == 200 and 'href="/clinic/sign-in"' in home.text  # a visitor here


def test_the_clinic_session_cookie_is_limited_to_the_clinic(browser: TestClient) -> None:
    start = browser.get(f"{CLINIC}/sign-in", follow_redirects=False)
    cookie = start.headers["set-cookie"]
    assert cookie.startswith("clinic_session=")
    assert "Path=/clinic" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_signing_out_of_the_clinic_revokes_its_tokens(browser: TestClient) -> None:
    sign_in(browser, "clinic-desk", "/clinic/", site=CLINIC)
    session = call(
        browser, portal_sessions(browser, "/clinic").load, browser.cookies["clinic_session"]
    )
    token = session.tokens.access_token
    home = browser.get(f"{CLINIC}/")
    out = browser.post(
        f"{CLINIC}/sign-out", data={"csrf": portal_csrf(home.text)}, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"] == "/clinic/signed-out"
    refused = browser.get(
        "http://testserver/fhir/Patient", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401


def test_the_next_address_after_sign_in_stays_inside_the_clinic(browser: TestClient) -> None:
    back = sign_in(browser, "clinic-admin", "/portal/", site=CLINIC)
    assert back.headers["location"] == "/clinic/"
