"""The authorization server's own pages, which the portal sends every patient through:
sign-in, consent, registration, password reset, app access. In Chromium: axe-clean (also
in their error states), no sideways scroll at 320 px or 200% zoom, a CSP that allows no
inline code and no framing, and forms that password managers and paste can fill."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import Page, Response, Route, expect

from tests.e2e.conftest import Live, axe, fits, screenshots, zoomed
from tests.integration.auth_helpers import pkce

CALLBACK = "http://127.0.0.1:8080/callback"  # the demo app's redirect; answered by the test


def authorize_url(live: Live, scope: str = "openid fhirUser launch/patient patient/*.rs") -> str:
    _verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": live.access.client_id,
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": "s1",
        "aud": f"{live.url}/fhir",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{live.url}/auth/authorize?{urlencode(params)}"


def strict_csp(response: Response | None) -> None:
    assert response is not None
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-frame-options"] == "DENY"


def styled(page: Page) -> None:
    """The stylesheet loaded under the CSP (boxes take their padding inside their width),
    and the CSP refused nothing on the page."""
    sizing = page.locator("main").evaluate("e => getComputedStyle(e).boxSizing")
    assert sizing == "border-box"
    assert page.csp_violations == []  # type: ignore[attr-defined]


def opened(page: Page, url: str, name: str) -> None:
    """Open a page reached by a link: strict CSP, styled, axe-clean, fits (screenshots)."""
    strict_csp(page.goto(url))
    styled(page)
    axe(page)
    screenshots(page, name)


def test_sign_in_fits_320px_is_axe_clean_and_runs_no_inline_code(page: Page, live: Live) -> None:
    response = page.goto(authorize_url(live))
    strict_csp(response)
    expect(page).to_have_title(re.compile(r"^Sign in"))
    axe(page)
    screenshots(page, "auth-sign-in")
    styled(page)

    page.get_by_label("User name").fill(live.access.patient_login)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_title(re.compile(r"^Error: Sign in"))
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    axe(page)
    screenshots(page, "auth-sign-in-error")
    styled(page)


def test_password_managers_and_paste_fill_the_forms(page: Page, live: Live) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(authorize_url(live))
    # Only what a password manager fills: no puzzle, no CAPTCHA, no copy of the password.
    fields = page.locator("form input:not([type=hidden])")
    assert fields.evaluate_all("l => l.map(e => [e.name, e.autocomplete])") == [
        ["username", "username"],
        ["password", "current-password"],
        ["totp", "one-time-code"],
    ]
    page.get_by_label("User name").fill(live.access.patient_login)
    page.evaluate("text => navigator.clipboard.writeText(text)", live.access.password)
    page.get_by_label("Password").focus()
    page.keyboard.press("Control+V")
    expect(page.get_by_label("Password")).to_have_value(live.access.password)

    with page.expect_navigation() as consent:
        page.get_by_role("button", name="Sign in").click()
    strict_csp(consent.value)
    expect(page).to_have_title(re.compile(r"^Allow access\?"))
    styled(page)
    axe(page)
    screenshots(page, "auth-consent")

    answered: list[str] = []

    def callback(route: Route) -> None:
        answered.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="back at the app")

    page.route(f"{CALLBACK}**", callback)
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("body")).to_have_text("back at the app")
    query = parse_qs(urlsplit(answered[0]).query)
    assert query["state"] == ["s1"] and query["code"][0]

    page.goto(f"{live.url}/auth/register")
    assert page.locator("#password").get_attribute("autocomplete") == "new-password"
    assert page.locator("#username").get_attribute("autocomplete") == "username"


def test_consent_asking_for_a_patient_is_axe_clean_with_its_error(page: Page, live: Live) -> None:
    page.goto(authorize_url(live, "openid fhirUser launch/patient patient/*.rs"))
    page.get_by_label("User name").fill(live.access.practitioner_login)
    page.get_by_label("Password").fill(live.access.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Patient id for this app")).to_be_visible()
    axe(page)
    fits(page)
    page.get_by_label("Patient id for this app").fill("no-such-patient")
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_title(re.compile(r"^Error: Allow access\?"))
    expect(page.get_by_label("Patient id for this app")).to_have_attribute("aria-invalid", "true")
    axe(page)
    screenshots(page, "auth-consent-error")


def test_registration_and_its_error_state_fit_and_are_axe_clean(page: Page, live: Live) -> None:
    opened(page, f"{live.url}/auth/register", "auth-register")
    page.get_by_label("Given name").fill("Ada")
    page.get_by_label("Family name").fill("Lovelace")
    page.get_by_label("Date of birth").fill("1990-12-10")
    page.get_by_label("E-mail address").fill("ada@example.org")
    page.get_by_label("User name").fill("ada-" + page.url[-4:])
    page.get_by_label("Password").fill("short")
    page.locator("form").evaluate("form => { form.noValidate = true; }")  # the server's check
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_title(re.compile(r"^Error: Create your account"))
    expect(page.get_by_role("alert")).to_be_visible()
    axe(page)
    screenshots(page, "auth-register-error")
    styled(page)


def test_password_reset_pages_and_a_dead_link_fit_and_are_axe_clean(page: Page, live: Live) -> None:
    opened(page, f"{live.url}/auth/password-reset", "auth-reset-request")
    page.get_by_label("E-mail address").fill("nobody@example.org")
    page.get_by_role("button", name="Send link").click()
    expect(page).to_have_title(re.compile(r"^Check your e-mail"))
    axe(page)
    zoomed(page)

    strict_csp(page.goto(f"{live.url}/auth/password-reset/confirm?token=not-a-token"))
    axe(page)
    page.get_by_label("New password").fill("a long enough new password")
    page.get_by_role("button", name="Set password").click()
    expect(page).to_have_title(re.compile(r"^Error: Choose a new password"))
    axe(page)
    screenshots(page, "auth-reset-error")
    styled(page)


def test_app_access_page_and_a_broken_link_are_axe_clean(page: Page, live: Live) -> None:
    opened(page, f"{live.url}/auth/manage", "auth-manage")
    page.get_by_label("User name").fill(live.access.patient_login)
    page.get_by_label("Password").fill(live.access.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps with access")).to_be_visible()
    axe(page)
    fits(page)

    broken = page.goto(f"{live.url}/auth/authorize?client_id=nobody&response_type=code")
    strict_csp(broken)
    axe(page)
    zoomed(page)


def test_pages_in_french_with_their_errors_are_axe_clean_and_fit(page: Page, live: Live) -> None:
    """The portal passes its language as `ui_locales`; the forms carry it on, so an error
    answer is in French too. A page reached with GET links to itself in English."""
    page.goto(authorize_url(live) + "&ui_locales=fr")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page).to_have_title(re.compile(r"^Se connecter"))
    axe(page)
    screenshots(page, "auth-sign-in-fr")
    page.locator("#username").fill(live.access.patient_login)
    page.get_by_label("Mot de passe").fill("pas le mot de passe")
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_title(re.compile(r"^Erreur\s:\sSe connecter"))
    expect(page.get_by_role("alert")).to_have_text(re.compile("mot de passe est faux"))
    axe(page)
    fits(page)
    page.locator("#username").fill(live.access.patient_login)
    page.get_by_label("Mot de passe").fill(live.access.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Autoriser l.accès\s\?"))).to_be_visible()
    axe(page)  # scope lines the catalogue cannot word are marked lang="en"
    screenshots(page, "auth-consent-fr")

    page.goto(f"{live.url}/auth/register?ui_locales=fr")
    axe(page)
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.goto(f"{live.url}/auth/register?ui_locales=fr")
    page.locator("form").evaluate("form => { form.noValidate = true; }")
    page.get_by_role("button", name="Créer le compte").click()
    expect(page.get_by_role("alert")).to_have_text("Remplissez tous les champs.")
    axe(page)
    screenshots(page, "auth-register-error-fr")

    page.goto(f"{live.url}/auth/password-reset?ui_locales=fr")
    axe(page)
    page.goto(f"{live.url}/auth/password-reset/confirm?token=x&ui_locales=fr")
    page.get_by_label("Nouveau mot de passe").fill("a long enough new password")
    page.get_by_role("button", name="Enregistrer le mot de passe").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("plus valide"))
    axe(page)
    fits(page)
    page.goto(f"{live.url}/auth/manage?ui_locales=fr")
    axe(page)
    zoomed(page)


def test_two_step_sign_in_pages_fit_and_are_axe_clean(page: Page, live: Live) -> None:
    for lang in ("en", "fr"):
        opened(page, f"{live.url}/auth/two-step?ui_locales={lang}", f"auth-two-step-{lang}")
        page.locator("#username").fill(live.access.practitioner_login)
        page.locator("#password").fill(live.access.password)
        page.locator("button[type=submit]").click()
        expect(page.locator("figure svg")).to_be_visible()  # the QR code, inline (no style)
        axe(page)
        screenshots(page, f"auth-two-step-key-{lang}")
        page.locator("#code").fill("000000")
        page.locator("button[type=submit]").click()
        expect(page.locator("#code")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        axe(page)
        styled(page)
