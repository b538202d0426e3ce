"""The portal's preferences page against the real app and store: what it writes on the
patient's Patient (and keeps), bad input changing nothing, CSRF, and push registration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.notifications.preferences import read_preferences
from fhir_server.settings import Settings
from fhir_server.store.outbox_store import OutboxStore
from tests.integration.auth_helpers import call
from tests.integration.portal_support import (
    PORTAL,
    add_patient_login,
    portal_app,
    portal_csrf,
    sign_in,
)

OTHER_EXT = {"url": "https://example.org/fhir/StructureDefinition/other", "valueString": "kept"}


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from portal_app(settings_factory, notify_reminder_offsets=[1440, 120])


def _stored(client: TestClient, patient_id: str) -> dict[str, Any]:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    version = call(client, store.read, "Patient", patient_id)
    return dict(version.resource)


def _with_home_phone(client: TestClient, patient_id: str) -> None:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    patient = _stored(client, patient_id)
    patient["telecom"] = [{"system": "phone", "use": "home", "value": "+33 1 00 00 00 00"}]
    patient["extension"] = [OTHER_EXT]
    call(client, store.update, patient)


def _form(client: TestClient, **values: Any) -> dict[str, Any]:
    token = portal_csrf(client.get(f"{PORTAL}/preferences").text)
    return {"csrf": token, "language": "en", **values}


def test_choices_are_written_on_the_patient_and_the_rest_is_kept(app: TestClient) -> None:
    app.cookies.clear()
    patient_id = add_patient_login(app, "prefs-a")
    _with_home_phone(app, patient_id)
    sign_in(app, "prefs-a")
    sent = _form(
        app,
        email="a@example.org",
        mobile="+33 6 12 34 56 78",
        channel=["sms", "push", "fax"],
        reminder=["120", "5"],
        language="fr",
    )
    saved = app.post(f"{PORTAL}/preferences", data=sent, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"].endswith("saved=1")
    patient = _stored(app, patient_id)
    prefs = read_preferences(patient)
    assert prefs.channels == ("sms", "push") and prefs.reminders == (120,)
    assert prefs.language == "fr" and not prefs.opted_out
    assert {"system": "phone", "use": "home", "value": "+33 1 00 00 00 00"} in patient["telecom"]
    assert {"system": "email", "value": "a@example.org"} in patient["telecom"]
    assert OTHER_EXT in patient["extension"]

    nothing = _form(app, email="a@example.org")  # no channel, no reminder ticked
    assert app.post(f"{PORTAL}/preferences", data=nothing).status_code == 200
    prefs = read_preferences(_stored(app, patient_id))
    assert prefs.opted_out and prefs.reminders == () and prefs.language == "en"


def test_bad_input_shows_errors_and_changes_nothing(app: TestClient) -> None:
    app.cookies.clear()
    patient_id = add_patient_login(app, "prefs-b")
    sign_in(app, "prefs-b")
    before = _stored(app, patient_id)
    for values in (
        {"email": "nope", "channel": "email"},
        {"email": "", "channel": "email"},
        {"mobile": "call me", "channel": "sms"},
        {"mobile": "", "channel": "sms"},
    ):
        answer = app.post(f"{PORTAL}/preferences", data=_form(app, **values))
        assert answer.status_code == 400, values
        assert "<title>Error: " in answer.text and 'href="#' in answer.text
    refused = app.post(f"{PORTAL}/preferences", data={"email": "x@example.org", "csrf": "x" * 43})
    assert refused.status_code == 403
    assert _stored(app, patient_id)["meta"]["versionId"] == before["meta"]["versionId"]


def test_push_registration_goes_through_the_fhir_operation(app: TestClient) -> None:
    app.cookies.clear()
    patient_id = add_patient_login(app, "prefs-c")
    sign_in(app, "prefs-c")
    shown = app.get(f"{PORTAL}/preferences")
    page = shown.text
    assert 'data-key="' in page and 'data-key=""' not in page  # the VAPID key
    assert shown.headers["x-portal-fhir-calls"] == "1"  # the Patient and the key in one batch
    token = portal_csrf(page)
    browser = {
        "endpoint": "https://push.example.org/push/1",
        "p256dh": "B" + "A" * 86,
        "auth": "A" * 22,
    }
    registered = app.post(f"{PORTAL}/preferences/push", data={"csrf": token, **browser})
    assert registered.status_code == 200 and registered.json() == {"registered": True}
    store = app.app.state.services.store  # type: ignore[attr-defined]
    found = call(app, OutboxStore(store).push_subscriptions, f"Patient/{patient_id}")
    assert [s["endpoint"] for s in found] == [browser["endpoint"]]
    missing = app.post(f"{PORTAL}/preferences/push", data={"csrf": token, "endpoint": "x"})
    assert missing.status_code == 400
    private = {**browser, "endpoint": "http://10.0.0.1/push"}
    assert (
        app.post(f"{PORTAL}/preferences/push", data={"csrf": token, **private}).status_code == 422
    )
    assert app.get(f"{PORTAL}/sw.js").headers["content-type"].startswith("text/javascript")
