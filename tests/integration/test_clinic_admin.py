"""The admin console's pages against the real app, store and Redis: an admin signed in to
`/clinic` runs users, apps, keys, delivery problems and the audit; the front desk and a
practitioner get the 403 page and change nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.notifications.message import Message
from fhir_server.settings import Settings
from tests.integration.auth_helpers import add_user, bearer, call, components, create, mint
from tests.integration.portal_support import CLINIC, portal_app, portal_csrf, sign_in

BASE = "http://testserver/fhir"


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for client in portal_app(settings_factory):
        doctor = create(client, {"resourceType": "Practitioner", "name": [{"family": "Doc"}]})
        add_user(client, "adm-doc", "practitioner", f"Practitioner/{doctor}")
        add_user(client, "adm-desk", "frontdesk", None)
        add_user(client, "adm-boss", "admin", None)
        yield client


@pytest.fixture
def admin(app: TestClient) -> TestClient:
    app.cookies.clear()
    sign_in(app, "adm-boss", "/clinic/admin", site=CLINIC)
    return app


def _users(app: TestClient) -> list[dict[str, Any]]:
    return call(app, components(app).accounts.list)  # type: ignore[no-any-return]


def post(app: TestClient, path: str, data: dict[str, str]) -> Any:
    """Post a form of the page at `path` (its CSRF token from the session's page)."""
    opened = app.get(f"{CLINIC}/admin")
    return app.post(
        f"{CLINIC}{path}", data={**data, "csrf": portal_csrf(opened.text)}, follow_redirects=False
    )


PAGES = ["/admin", "/admin/users", "/admin/apps", "/admin/keys", "/admin/deliveries",
         "/admin/audit", "/admin/users/adm-boss", "/admin/apps/portal"]  # fmt: skip


@pytest.mark.parametrize("username", ["adm-doc", "adm-desk"])
def test_other_staff_get_the_403_page_and_change_nothing(app: TestClient, username: str) -> None:
    app.cookies.clear()
    sign_in(app, username, "/clinic/", site=CLINIC)
    home = app.get(f"{CLINIC}/")
    assert 'href="/clinic/admin"' not in home.text  # no admin entry in their menu
    for path in PAGES:
        refused = app.get(f"{CLINIC}{path}")
        assert refused.status_code == 403, path
        assert "You cannot see this page" in refused.text
    before = _users(app)
    csrf = portal_csrf(home.text)
    for path, data in (
        ("/admin/users", {"username": "sneaky", "email": "s@example.org", "role": "admin"}),
        ("/admin/users/adm-desk", {"action": "role", "role": "admin"}),
        ("/admin/keys", {"confirmed": "yes"}),
    ):
        assert app.post(f"{CLINIC}{path}", data={**data, "csrf": csrf}).status_code == 403
    assert _users(app) == before


def test_the_admin_menu_leads_to_every_part(admin: TestClient) -> None:
    home = admin.get(f"{CLINIC}/admin")
    assert home.status_code == 200
    assert 'href="/clinic/admin"' in home.text  # the header menu's entry
    for path in PAGES[1:6]:
        assert f'href="/clinic{path}"' in home.text
        assert admin.get(f"{CLINIC}{path}").status_code == 200, path
    french = admin.get(f"{CLINIC}/admin/users?lang=fr")
    assert "<h1>Utilisateurs</h1>" in french.text and "<caption" in french.text


def test_invite_change_role_and_disable_with_a_confirmation(admin: TestClient) -> None:
    missing = post(admin, "/admin/users", {"username": "newbie", "email": "", "role": "frontdesk"})
    assert missing.status_code == 400 and "Enter an e-mail address." in missing.text
    taken = post(
        admin, "/admin/users", {"username": "adm-desk", "email": "x@example.org", "role": "admin"}
    )
    assert taken.status_code == 400 and "taken" in taken.text
    assert [u for u in _users(admin) if u["username"] == "newbie"] == []
    invited = post(
        admin, "/admin/users", {"username": "newbie", "email": "n@example.org", "role": "frontdesk"}
    )
    assert invited.status_code == 303
    listed = admin.get(invited.headers["location"])
    assert "The invitation has been sent." in listed.text and ">newbie</a>" in listed.text
    role = post(admin, "/admin/users/newbie", {"action": "role", "role": "practitioner"})
    assert role.status_code == 400 and "Practitioner" in role.text  # not linked: refused
    assert (
        post(admin, "/admin/users/newbie", {"action": "role", "role": "admin"}).status_code == 303
    )
    ask = post(admin, "/admin/users/newbie", {"action": "disable"})
    assert ask.status_code == 200 and "Disable this account?" in ask.text
    assert 'name="confirmed" value="yes"' in ask.text
    newbie = next(u for u in _users(admin) if u["username"] == "newbie")
    assert newbie["role"] == "admin" and newbie["disabled"] is False
    done = post(admin, "/admin/users/newbie", {"action": "disable", "confirmed": "yes"})
    assert done.status_code == 303
    assert next(u for u in _users(admin) if u["username"] == "newbie")["disabled"] is True
    forged = admin.post(f"{CLINIC}/admin/users/newbie", data={"action": "enable"})
    assert forged.status_code == 403
    assert next(u for u in _users(admin) if u["username"] == "newbie")["disabled"] is True
    assert admin.get(f"{CLINIC}/admin/users/nobody").status_code == 404


def test_register_an_app_see_its_secret_once_and_remove_it(admin: TestClient) -> None:
    form = {
        "name": "Lab app",
        "type": "confidential",
        "scope": "openid user/Appointment.rs",
        "redirect_uris": "https://lab.example/cb",
    }
    shown = post(admin, "/admin/apps", form)
    assert shown.status_code == 200 and "Client secret, shown this once:" in shown.text
    [app] = [c for c in call(admin, components(admin).clients.list) if c.name == "Lab app"]
    secret = shown.text.split("<p><code>", 1)[1].split("</code>", 1)[0]
    assert app.check_client_secret(secret)
    assert secret not in admin.get(f"{CLINIC}/admin/apps/{app.client_id}").text  # once only
    bad = post(admin, "/admin/apps", {**form, "type": "robot", "name": "Robot"})
    assert bad.status_code == 400 and "type" in bad.text
    assert post(admin, f"/admin/apps/{app.client_id}", {"action": "remove"}).status_code == 200
    assert call(admin, components(admin).clients.get, app.client_id) is not None
    gone = post(admin, f"/admin/apps/{app.client_id}", {"action": "remove", "confirmed": "yes"})
    assert gone.status_code == 303
    assert call(admin, components(admin).clients.get, app.client_id) is None
    own = admin.get(f"{CLINIC}/admin/apps/portal")
    assert "cannot be changed here" in own.text and 'value="remove"' not in own.text


def test_rotate_the_signing_key_after_a_confirmation(admin: TestClient) -> None:
    before = components(admin).tokens.keyring.signing.kid
    ask = post(admin, "/admin/keys", {})
    assert ask.status_code == 200 and components(admin).tokens.keyring.signing.kid == before
    assert post(admin, "/admin/keys", {"confirmed": "yes"}).status_code == 303
    after = components(admin).tokens.keyring.signing.kid
    assert after != before
    page = admin.get(f"{CLINIC}/admin/keys?done=rotated")
    assert after in page.text and before in page.text  # the old one still checks tokens


def test_delivery_problems_show_the_reason_and_retry(admin: TestClient) -> None:
    message = Message(
        key="admin-page-test", event="booked", channel="email",
        about="Appointment/none/_history/1", recipient="Patient/someone",
        subject="Patient/someone", details={"destination": "p@example.org", "attempts": 3},
    ).to_communication()  # fmt: skip
    message |= {"status": "not-done", "statusReason": {"text": "The mail server refused."}}
    message["id"] = create(admin, message)
    create(
        admin,
        {
            "resourceType": "Subscription",
            "status": "error",
            "reason": "EHR feed",
            "criteria": "Appointment?status=booked",
            "error": "The endpoint answered 503.",
            "channel": {"type": "rest-hook", "endpoint": "https://ehr.example.org/in"},
        },
    )
    page = admin.get(f"{CLINIC}/admin/deliveries")
    assert "The mail server refused." in page.text and "Failed" in page.text
    assert "The endpoint answered 503." in page.text and "EHR feed" in page.text
    retried = post(admin, f"/admin/deliveries/{message['id']}/retry", {})
    assert retried.status_code == 303
    stored = admin.get(
        f"{BASE}/Communication/{message['id']}", headers=bearer(mint(admin, "user/*.rs"))
    ).json()
    assert stored["status"] == "preparation"
    again = post(admin, "/admin/deliveries/unknown-id/retry", {})
    assert again.status_code == 400 and "error-summary" in again.text


def test_audit_of_a_patient_on_the_page_and_as_csv(admin: TestClient) -> None:
    patient = create(admin, {"resourceType": "Patient", "name": [{"family": "Audited"}]})
    desk = bearer(mint(admin, "user/*.cruds", role="frontdesk"))
    assert admin.get(f"{BASE}/Patient/{patient}", headers=desk).status_code == 200
    from tests.integration.auth_helpers import audit_events

    audit_events(admin)  # relay the journal now
    query = {"patient": patient, "since": "2020-01-01", "until": "2099-12-31"}
    page = admin.get(f"{CLINIC}/admin/audit", params=query)
    assert page.status_code == 200 and "frontdesk" in page.text and "Download as CSV" in page.text
    download = admin.get(f"{CLINIC}/admin/audit.csv", params=query)
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["role"] for r in rows] == ["frontdesk"]
    assert f"Patient/{patient}" in rows[0]["resources"]
    bad = admin.get(
        f"{CLINIC}/admin/audit", params={"patient": "a b", "since": "x", "until": "2020-01-01"}
    )
    assert bad.status_code == 400 and bad.text.count("field-error") == 2
