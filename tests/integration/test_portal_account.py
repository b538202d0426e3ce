"""The portal's account pages hand over to the authorization server's pages and lead back:
registering, a forgotten password (real SMTP), two-step sign-in; then the portal works."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pyotp
import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import PASSWORD, audit_events, csrf_of, post_form
from tests.integration.notify_support import SmtpHandler, start_smtp
from tests.integration.portal_support import (
    PORTAL,
    add_patient_login,
    form_fields,
    portal_app,
    sign_in,
    start_sign_in,
)

AUTH = "http://testserver/auth"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[SmtpHandler, int]]:
    handler = SmtpHandler()
    controller = start_smtp(handler)
    yield handler, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def app(
    settings_factory: Callable[..., Settings], inbox: tuple[SmtpHandler, int]
) -> Iterator[TestClient]:
    yield from portal_app(
        settings_factory, smtp_host="127.0.0.1", smtp_port=inbox[1], smtp_starttls=False
    )


@pytest.fixture
def browser(app: TestClient) -> TestClient:
    app.cookies.clear()
    return app


def _home_after_sign_in(browser: TestClient, username: str) -> str:
    done = sign_in(browser, username)
    assert done.status_code == 303, done.text[:300]
    return browser.get(f"{PORTAL}/").text


def test_the_account_page_links_to_the_auth_servers_pages(browser: TestClient) -> None:
    add_patient_login(browser, "acct")
    sign_in(browser, "acct")
    page = browser.get(f"{PORTAL}/account")
    assert page.status_code == 200
    for target in ("/auth/password-reset", "/auth/manage", "/auth/two-step"):
        assert f'href="http://testserver{target}?ui_locales=en"' in page.text  # its language


def test_register_then_sign_in_to_the_portal(browser: TestClient) -> None:
    start = browser.get(f"{PORTAL}/")
    assert 'href="/portal/register"' in start.text
    handed = browser.get(f"{PORTAL}/register", follow_redirects=False)
    assert handed.status_code == 303
    assert handed.headers["location"] == f"{AUTH}/register?ui_locales=en"
    form = {
        "given": "Nora",
        "family": "Newcomer",
        "birthDate": "1990-05-06",
        "email": "nora@example.org",
        "username": "nora",
        "password": PASSWORD,
    }
    registered = post_form(browser, handed.headers["location"], form)
    assert registered.status_code == 200
    assert 'href="http://testserver/portal/"' in registered.text  # the way back
    assert "My appointments" in _home_after_sign_in(browser, "nora")


def test_forgotten_password_then_sign_in(
    browser: TestClient, inbox: tuple[SmtpHandler, int]
) -> None:
    add_patient_login(browser, "forgot")
    handed = browser.get(f"{PORTAL}/forgot-password", follow_redirects=False)
    assert handed.headers["location"] == f"{AUTH}/password-reset?ui_locales=en"
    post_form(browser, handed.headers["location"], {"email": "forgot@example.org"})
    (mail,) = inbox[0].to("forgot@example.org")
    link = re.search(r"token=(\S+)", mail.get_content())
    assert link
    new_password = "lighthouse-keeper-rests-77"
    changed = post_form(
        browser,
        f"{AUTH}/password-reset/confirm?token={link.group(1)}",
        {"token": link.group(1), "password": new_password},
    )
    assert changed.status_code == 200 and 'href="http://testserver/portal/"' in changed.text
    login = browser.get(start_sign_in(browser))
    fields = form_fields(login.text) | {"step": "login", "username": "forgot"}
    old = browser.post(
        f"{AUTH}/authorize", data=fields | {"password": PASSWORD}, follow_redirects=False
    )
    assert old.status_code == 200 and 'name="password"' in old.text  # asked again
    signed_in = browser.post(
        f"{AUTH}/authorize", data=fields | {"password": new_password}, follow_redirects=False
    )
    assert signed_in.headers["location"].startswith(f"{PORTAL}/callback?")


def _two_step_form(browser: TestClient, **fields: str) -> str:
    page = browser.get(f"{AUTH}/two-step")
    assert page.status_code == 200
    answer = browser.post(
        f"{AUTH}/two-step", data={"csrf": csrf_of(page.text), "step": "login", **fields}
    )
    return answer.text


def test_turn_on_two_step_sign_in(app: TestClient, browser: TestClient) -> None:
    add_patient_login(browser, "careful")
    wrong = _two_step_form(browser, username="careful", password="not-the-password")
    assert "wrong" in wrong and "secret" not in form_fields(wrong)
    setup = _two_step_form(browser, username="careful", password=PASSWORD)
    fields = form_fields(setup)
    secret = fields["secret"]
    assert "<svg" in setup and "otpauth://totp/" in setup and secret[:4] in setup
    bad = browser.post(f"{AUTH}/two-step", data=fields | {"code": "000000"})
    assert bad.status_code == 400 and "not right" in bad.text
    # Not on until proven: the password alone still signs in.
    assert "My appointments" in _home_after_sign_in(browser, "careful")
    browser.cookies.clear()
    tampered = fields | {"secret": pyotp.random_base32()}
    forged = browser.post(f"{AUTH}/two-step", data=tampered | {"code": "123456"})
    assert "expired" in forged.text
    page = browser.get(f"{AUTH}/two-step")
    fields["csrf"] = csrf_of(page.text)
    code = pyotp.TOTP(secret).now()
    on = browser.post(f"{AUTH}/two-step", data=fields | {"code": code})
    assert on.status_code == 200 and "Two-step sign-in is on" in on.text
    replay = browser.post(f"{AUTH}/two-step", data=fields | {"code": code})
    assert "already used" in replay.text
    # Now the portal's sign-in needs the code as well.
    login = browser.get(start_sign_in(browser))
    base = form_fields(login.text) | {"step": "login", "username": "careful"}
    without = browser.post(
        f"{AUTH}/authorize", data=base | {"password": PASSWORD}, follow_redirects=False
    )
    assert without.status_code == 200 and 'name="password"' in without.text  # asked again
    with_code = browser.post(
        f"{AUTH}/authorize",
        data=base | {"password": PASSWORD, "totp": pyotp.TOTP(secret).now()},
        follow_redirects=False,
    )
    assert with_code.headers["location"].startswith(f"{PORTAL}/callback?")
    french = browser.get(f"{AUTH}/two-step", params={"ui_locales": "fr"})
    assert '<html lang="fr">' in french.text
    assert "Activer la connexion en deux étapes" in french.text
    events = [e["subtype"][0]["code"] for e in audit_events(app)]
    assert "second-factor-on" in events


def test_a_signed_in_patient_signs_in_again_without_the_auth_pages(browser: TestClient) -> None:
    add_patient_login(browser, "again")
    sign_in(browser, "again")
    again = browser.get(f"{PORTAL}/sign-in?next=/portal/account", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/portal/account"
