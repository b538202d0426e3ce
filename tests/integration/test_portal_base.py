"""The portal's foundation against the real app, store and Redis: sign-in (code + PKCE,
state), the session cookie, CSRF, language, the signed-out redirect and idle expiry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict
from urllib.parse import urlencode

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.integration.auth_helpers import call, components
from tests.integration.portal_support import (
    PORTAL,
    add_patient_login,
    authorize_and_consent,
    portal_app,
    portal_csrf,
    portal_sessions,
    query_of,
    sign_in,
    start_sign_in,
)

COOKIE = "portal_session"  # the portal's session cookie (ui.session)


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for client in portal_app(settings_factory):
        add_patient_login(client, "pat")
        yield client


@pytest.fixture
def browser(app: TestClient) -> TestClient:
    """The app client with a clean cookie jar (a fresh browser)."""
    app.cookies.clear()
    return app


def _signed_in(client: TestClient) -> bool:
    return client.get(f"{PORTAL}/account", follow_redirects=False).status_code == 200


def test_sign_in_goes_through_authorize_with_pkce_and_comes_back(browser: TestClient) -> None:
    authorize = start_sign_in(browser, "/portal/account?tab=1")
    assert authorize.startswith("http://testserver/auth/authorize?")
    query = query_of(authorize)
    assert query["client_id"] == "portal" and query["response_type"] == "code"
    assert query["redirect_uri"] == f"{PORTAL}/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["aud"] == "http://testserver/fhir"
    callback = authorize_and_consent(browser, authorize, "pat")
    done = browser.get(callback, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/portal/account?tab=1"
    assert _signed_in(browser)
    # The tokens stay on the server: the browser holds one opaque cookie, no JWT.
    assert set(browser.cookies.keys()) <= {COOKIE, "fhir_auth_csrf", "lang"}
    assert "eyJ" not in browser.cookies[COOKIE]
    # A callback is good once: the same answer again signs nobody in.
    again = browser.get(callback, follow_redirects=False)
    assert again.status_code == 400


def test_a_code_issued_for_another_pkce_challenge_is_refused(browser: TestClient) -> None:
    """An attacker's code (their own challenge) injected into our callback with our state
    fails the exchange, because the portal sends the verifier of its own challenge."""
    ours = query_of(start_sign_in(browser))
    verifier = secrets.token_urlsafe(48)
    theirs = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    forged = ours | {"code_challenge": theirs.decode()}
    jar = dict(browser.cookies)
    callback = authorize_and_consent(
        browser, f"http://testserver/auth/authorize?{urlencode(forged)}", "pat"
    )
    browser.cookies.clear()
    for name, value in jar.items():
        browser.cookies.set(name, value)
    refused = browser.get(callback, follow_redirects=False)
    assert refused.status_code == 400 and "not signed in" in refused.text
    assert not _signed_in(browser)


def test_a_wrong_or_missing_state_is_refused(browser: TestClient) -> None:
    authorize = start_sign_in(browser)
    callback = authorize_and_consent(browser, authorize, "pat")
    query = query_of(callback)
    for state in ("", "forged-state"):
        wrong = f"{PORTAL}/callback?{urlencode({'code': query['code'], 'state': state})}"
        refused = browser.get(wrong, follow_redirects=False)
        assert refused.status_code == 400
        assert "<title>" in refused.text and not _signed_in(browser)
    assert browser.get(callback, follow_redirects=False).status_code == 303
    assert _signed_in(browser)


def test_a_callback_in_another_browser_is_refused(browser: TestClient) -> None:
    callback = authorize_and_consent(browser, start_sign_in(browser), "pat")
    browser.cookies.clear()  # the answer arrives in a browser that did not start it
    assert browser.get(callback, follow_redirects=False).status_code == 400
    assert not _signed_in(browser)


def test_denying_consent_says_so(browser: TestClient) -> None:
    authorize = start_sign_in(browser)
    state = query_of(authorize)["state"]
    denied = browser.get(f"{PORTAL}/callback", params={"error": "access_denied", "state": state})
    assert denied.status_code == 200 and "chose not to" in denied.text
    assert not _signed_in(browser)


def test_session_cookie_flags_in_development(browser: TestClient) -> None:
    started = browser.get(f"{PORTAL}/sign-in", follow_redirects=False)
    cookie = started.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/portal" in cookie
    assert "Secure" not in cookie  # plain http in development


def test_session_cookie_is_secure_in_production(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        auth_enabled=True, environment="production", secret_key=secrets.token_urlsafe(40)
    )
    with TestClient(create_app(settings)) as client:
        started = client.get(f"{PORTAL}/sign-in", follow_redirects=False)
    cookie = started.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_a_form_without_the_csrf_token_gets_a_403_page(browser: TestClient) -> None:
    sign_in(browser, "pat")
    token = portal_csrf(browser.get(f"{PORTAL}/").text)
    for data, headers in (
        ({}, {}),
        ({"csrf": "x" * 43}, {}),
        ({"csrf": token}, {"Origin": "https://evil.example"}),
    ):
        refused = browser.post(f"{PORTAL}/sign-out", data=data, headers=headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "This form has expired" in refused.text
        assert _signed_in(browser)
    out = browser.post(f"{PORTAL}/sign-out", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/portal/signed-out"
    assert not _signed_in(browser)


def test_signing_out_of_an_ended_session_just_says_so(browser: TestClient) -> None:
    sign_in(browser, "pat")
    csrf = portal_csrf(browser.get(f"{PORTAL}/").text)
    browser.cookies.clear()  # the session ended meanwhile (an old tab)
    out = browser.post(f"{PORTAL}/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/portal/signed-out"


def test_sign_out_revokes_the_tokens(app: TestClient, browser: TestClient) -> None:
    sign_in(browser, "pat")
    sessions = portal_sessions(app)
    session = call(app, sessions.load, browser.cookies[COOKIE])
    token = session.tokens.access_token
    fhir = f"http://testserver/fhir/Patient/{session.tokens.patient}"
    assert browser.get(fhir, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    csrf = portal_csrf(browser.get(f"{PORTAL}/").text)
    browser.post(f"{PORTAL}/sign-out", data={"csrf": csrf})
    assert browser.get(fhir, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert call(app, sessions.load, session.id) is None


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(browser: TestClient) -> None:
    sent = browser.get(f"{PORTAL}/account?x=1", follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/portal/sign-in?" + urlencode(
        {"next": "/portal/account?x=1"}
    )
    authorize = browser.get(sent.headers["location"], follow_redirects=False)
    assert authorize.headers["location"].startswith("http://testserver/auth/authorize?")


def test_next_never_leaves_the_portal(browser: TestClient) -> None:
    for target in (
        "https://evil.example/",
        "//evil.example/portal",
        "/fhir/Patient",
        "/portal\\x",
        "/portalx",
    ):
        callback = authorize_and_consent(browser, start_sign_in(browser, target), "pat")
        done = browser.get(callback, follow_redirects=False)
        assert done.headers["location"] == "/portal/", target
        browser.cookies.clear()


def test_language_follows_accept_language_and_the_switch(browser: TestClient) -> None:
    english = browser.get(f"{PORTAL}/", headers={"Accept-Language": "de, en;q=0.5"})
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    assert 'href="/portal/?lang=fr"' in english.text  # the switch, on every page
    french = browser.get(f"{PORTAL}/", headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.8"})
    assert '<html lang="fr">' in french.text and "Se connecter" in french.text
    assert 'href="/portal/?lang=en"' in french.text
    switched = browser.get(f"{PORTAL}/signed-out?lang=fr", headers={"Accept-Language": "en"})
    assert '<html lang="fr">' in switched.text and "Vous êtes déconnecté" in switched.text
    later = browser.get(f"{PORTAL}/", headers={"Accept-Language": "en"})
    assert '<html lang="fr">' in later.text  # the choice is remembered (lang cookie)
    back = browser.get(f"{PORTAL}/?lang=en", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in back.text


def test_a_page_with_errors_titles_itself_error(browser: TestClient) -> None:
    sign_in(browser, "pat")
    refused = browser.post(f"{PORTAL}/sign-out", data={})
    assert "<title>This form has expired" in refused.text
    missing = browser.get(f"{PORTAL}/no-such-page")
    assert missing.status_code == 404 and "Page not found" in missing.text


def test_portal_pages_carry_a_strict_csp(browser: TestClient) -> None:
    for path in ("/", "/signed-out", "/no-such-page"):
        answer = browser.get(f"{PORTAL}{path}")
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
    css = browser.get(f"{PORTAL}/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_landing_page_links_to_the_portal(browser: TestClient) -> None:
    root = browser.get("http://testserver/")
    assert root.status_code == 200 and 'href="/portal/"' in root.text


def test_the_idle_session_ends_on_the_server(app: TestClient, browser: TestClient) -> None:
    sign_in(browser, "pat")
    sessions = portal_sessions(app)
    session_id = browser.cookies[COOKIE]
    key = sessions._key(session_id)
    timeout = app.app.state.services.settings.portal_idle_timeout  # type: ignore[attr-defined]

    async def ttl() -> int:
        return int(await (await sessions._connect()).ttl(key))

    async def idle_for(seconds: int) -> None:
        """As if the last page had been opened `seconds` ago."""
        session = await sessions.load(session_id)
        session.seen -= seconds
        left = timeout - seconds
        await (await sessions._connect()).set(key, orjson.dumps(asdict(session)), ex=left)

    assert timeout - 5 < call(app, ttl) <= timeout
    call(app, idle_for, 600)
    page = browser.get(f"{PORTAL}/account")
    assert timeout - 5 < call(app, ttl) <= timeout  # a page restarts the clock
    assert f'data-idle-seconds="{timeout}"' in page.text  # what the warning script counts down
    call(app, idle_for, timeout - 1)
    call(app, lambda: asyncio.sleep(1.1))
    sent = browser.get(f"{PORTAL}/account", follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"].startswith("/portal/signed-out?")
    assert query_of(sent.headers["location"]) == {"next": "/portal/account", "reason": "idle"}
    told = browser.get(sent.headers["location"])
    assert "You have been signed out" in told.text and "20 minutes" in told.text


def test_home_names_the_patient_with_one_fhir_call(browser: TestClient) -> None:
    sign_in(browser, "pat")
    home = browser.get(f"{PORTAL}/")
    assert home.status_code == 200 and "Test Portal" in home.text
    assert home.headers["x-portal-fhir-calls"] == "1"
    for link in ("/portal/book", "/portal/appointments", "/portal/preferences"):
        assert f'href="{link}"' in home.text


def test_a_token_revoked_elsewhere_ends_the_session(app: TestClient, browser: TestClient) -> None:
    sign_in(browser, "pat")
    call(app, components(app).store.revoke_user_tokens, "pat")  # e.g. a password reset
    sent = browser.get(f"{PORTAL}/", follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/portal/sign-in?" + urlencode({"next": "/portal/"})
    assert call(app, portal_sessions(app).load, browser.cookies[COOKIE]) is None
    again = browser.get(sent.headers["location"], follow_redirects=False)
    assert again.headers["location"].startswith("http://testserver/auth/authorize?")


def test_an_expiring_access_token_is_refreshed_on_the_server(
    settings_factory: Callable[..., Settings],
) -> None:
    """With access tokens shorter than the refresh margin, every page refreshes first."""
    for client in portal_app(settings_factory, access_token_lifetime=30):
        add_patient_login(client, "brief")
        sign_in(client, "brief")
        sessions = portal_sessions(client)
        first = call(client, sessions.load, client.cookies[COOKIE]).tokens
        home = client.get(f"{PORTAL}/")
        assert home.status_code == 200 and "Test Portal" in home.text
        second = call(client, sessions.load, client.cookies[COOKIE]).tokens
        assert second.access_token != first.access_token
        assert second.refresh_token and second.refresh_token != first.refresh_token  # rotated
        assert second.patient == first.patient
        call(client, components(client).store.revoke_user_tokens, "brief")
        ended = client.get(f"{PORTAL}/", follow_redirects=False)
        assert ended.status_code == 303 and ended.headers["location"].startswith("/portal/")
        assert call(client, sessions.load, client.cookies[COOKIE]) is None


def test_without_redis_the_portal_says_it_is_unavailable(
    settings_factory: Callable[..., Settings],
) -> None:
    closed = "redis://127.0.0.1:9/0"  # the discard port: nothing answers
    for client in portal_app(settings_factory, redis_url=closed):
        assert client.get(f"{PORTAL}/").status_code == 200  # no session asked for: none needed
        down = client.get(f"{PORTAL}/sign-in", follow_redirects=False)
        assert down.status_code == 503 and "not available" in down.text
        assert down.headers["content-type"].startswith("text/html")
        client.cookies.set(COOKIE, "x" * 43)
        assert client.get(f"{PORTAL}/account").status_code == 503
