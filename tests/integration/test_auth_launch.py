"""Launches as real SMART clients do them: Python `fhirclient` on a live server, EHR launch.

The server runs under uvicorn on a loopback port (fhirclient speaks plain
HTTP through `requests`); the login and consent forms are driven headlessly
by reading each page's form and posting it back, as a browser would.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from fhirclient import client as smart_client
from fhirclient.models.appointment import Appointment
from fhirclient.models.patient import Patient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    PASSWORD,
    REDIRECT,
    add_client,
    add_user,
    appointment,
    authorize_params,
    code_of,
    create,
    csrf_of,
    exchange,
    log_in_and_consent,
    login_form,
    login_token,
    new_patient,
    pkce,
)

APP_SCOPE = "openid fhirUser offline_access patient/*.rs patient/Appointment.cruds"


class FormReader(HTMLParser):
    """The first form of a page: its action and the values a browser would submit."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self.buttons: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "button" and a.get("name"):
            self.buttons.setdefault(a["name"], []).append(a.get("value", ""))


def submit(http: httpx.Client, page: httpx.Response, **typed: str) -> httpx.Response:
    form = FormReader()
    form.feed(page.text)
    assert form.action, page.text[:300]
    body = urlencode([*form.fields, *typed.items()])
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return http.post(urljoin(str(page.url), form.action), content=body, headers=headers)


@pytest.fixture(scope="module")
def live(settings_factory: Callable[..., Settings]) -> Iterator[tuple[str, TestClient]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}/fhir"
    settings = settings_factory(auth_enabled=True, public_base_url=base)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        with TestClient(create_app(settings)) as setup:
            yield base, setup
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_standalone_launch_with_fhirclient(live: tuple[str, TestClient]) -> None:
    base, setup = live
    patient_id = new_patient(setup, "Dana")
    other = new_patient(setup, "Eve")
    own_appt = create(setup, appointment(patient_id))
    create(setup, appointment(other))
    add_user(setup, "dana", "patient", f"Patient/{patient_id}")
    add_client(setup, "smart-app", "public", f"launch/patient {APP_SCOPE}")

    smart = smart_client.FHIRClient(
        settings={
            "app_id": "smart-app",
            "api_base": base,
            "redirect_uri": REDIRECT,
            "scope": APP_SCOPE,
        }
    )
    with httpx.Client() as browser:
        login = browser.get(smart.authorize_url)
        assert login.status_code == 200
        consent = submit(browser, login, username="dana", password=PASSWORD)
        assert consent.status_code == 200
        done = submit(browser, consent, decision="allow")
        assert done.status_code == 302
        location = done.headers["location"]
    assert location.startswith(REDIRECT)
    smart.handle_callback(location)
    assert smart.ready and smart.patient_id == patient_id
    assert smart.server.auth.refresh_token
    me = Patient.read(patient_id, smart.server)
    assert me.id == patient_id
    mine = Appointment.where(struct={}).perform_resources(smart.server)
    assert [a.id for a in mine] == [own_appt]
    assert smart.reauthorize()  # refresh with the rotated token
    assert Patient.read(patient_id, smart.server).id == patient_id


def test_ehr_launch(live: tuple[str, TestClient]) -> None:
    base, setup = live
    patient_id = new_patient(setup, "Fay")
    add_user(setup, "drsmith", "practitioner", "Practitioner/dr-smith")
    add_client(setup, "ehr-console", "public", "openid fhirUser user/*.rs")
    add_client(setup, "ehr-app", "public", "launch openid fhirUser patient/*.rs")
    practitioner = login_token(
        setup, "ehr-console", "drsmith", "openid fhirUser user/*.rs", aud=base
    )
    auth_base = base.removesuffix("/fhir") + "/auth"
    made = httpx.post(
        f"{auth_base}/launch",
        json={"patient": patient_id},
        headers={"Authorization": f"Bearer {practitioner['access_token']}"},
    )
    assert made.status_code == 200, made.text
    launch = made.json()["launch"]

    smart = smart_client.FHIRClient(
        settings={
            "app_id": "ehr-app",
            "api_base": base,
            "redirect_uri": REDIRECT,
            "scope": "openid fhirUser patient/*.rs",
            "launch_token": launch,
        }
    )
    with httpx.Client() as browser:
        login = browser.get(smart.authorize_url)
        consent = submit(browser, login, username="drsmith", password=PASSWORD)
        done = submit(browser, consent, decision="allow")
    assert done.status_code == 302
    context = smart.server.auth.handle_callback(done.headers["location"], smart.server)
    assert context["patient"] == patient_id
    assert context["need_patient_banner"] is True
    style = httpx.get(context["smart_style_url"])
    assert style.status_code == 200 and "color_background" in style.json()
    assert "launch" in context["scope"].split()


def test_launch_needs_a_practitioner_or_system_token(live: tuple[str, TestClient]) -> None:
    base, setup = live
    patient_id = new_patient(setup, "Gil")
    add_user(setup, "gil", "patient", f"Patient/{patient_id}")
    add_client(setup, "gil-app", "public", "launch/patient patient/*.rs")
    token = login_token(setup, "gil-app", "gil", "launch/patient patient/*.rs", aud=base)[
        "access_token"
    ]
    auth_base = base.removesuffix("/fhir") + "/auth"
    refused = httpx.post(
        f"{auth_base}/launch",
        json={"patient": patient_id},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 403
    assert httpx.post(f"{auth_base}/launch", json={"patient": patient_id}).status_code == 401


def test_unknown_launch_value_is_refused(live: tuple[str, TestClient]) -> None:
    _, setup = live
    add_client(setup, "ehr-app-2", "public", "launch patient/*.rs")
    _, challenge = pkce()
    params = authorize_params(
        "ehr-app-2", "launch patient/*.rs", challenge, launch="made-up", aud=live[0]
    )
    response = setup.get(
        params and "http://testserver/auth/authorize", params=params, follow_redirects=False
    )
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_request"]


def test_practitioner_standalone_picks_a_patient(live: tuple[str, TestClient]) -> None:
    _, setup = live
    patient_id = new_patient(setup, "Hal")
    add_user(setup, "drjones", "practitioner", "Practitioner/dr-jones")
    add_client(setup, "picker", "public", "launch/patient patient/*.rs")
    verifier, challenge = pkce()
    params = authorize_params("picker", "launch/patient patient/*.rs", challenge, aud=live[0])
    location = log_in_and_consent(setup, params, "drjones", patient=patient_id)
    body: dict[str, Any] = exchange(
        setup, code_of(location, params["state"]), "picker", verifier
    ).json()
    assert body["patient"] == patient_id


def test_practitioner_must_pick_a_known_patient(live: tuple[str, TestClient]) -> None:
    _, setup = live
    add_user(setup, "drlee", "practitioner", "Practitioner/dr-lee")
    add_client(setup, "picker-2", "public", "launch/patient patient/*.rs")
    _, challenge = pkce()
    params = authorize_params("picker-2", "launch/patient patient/*.rs", challenge, aud=live[0])
    consent = login_form(setup, params, "drlee", PASSWORD)
    assert 'name="patient"' in consent.text
    ticket = re.search(r'name="ticket" value="([^"]+)"', consent.text)
    assert ticket
    form = {**params, "step": "consent", "ticket": ticket.group(1), "decision": "allow"}
    form["csrf"] = csrf_of(consent.text)
    unknown = setup.post(
        "http://testserver/auth/authorize", data=form | {"patient": "no-such-patient"}
    )
    assert unknown.status_code == 200 and "known patient" in unknown.text
