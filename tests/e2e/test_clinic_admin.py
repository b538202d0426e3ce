"""The admin console in Chromium: every page axe-clean (WCAG 2.0-2.2 A and AA) in English
and French and in an error state, fitting at 320 px, and an invitation and a confirmed
action done with the keyboard alone; the front desk meets the 403 page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Live, axe, screenshots, sign_in, tab_to, zoomed

PAGES = ("admin", "admin/users", "admin/apps", "admin/keys", "admin/deliveries")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_admin_pages_are_axe_clean_and_fit(page: Page, live: Live, lang: str) -> None:
    sign_in(page, live, live.access.admin_login, site="clinic")
    for path in PAGES:
        page.goto(f"{live.url}/clinic/{path}?lang={lang}")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        axe(page)
        if lang == "en":
            screenshots(page, f"clinic-{path.replace('/', '-')}")
        else:
            zoomed(page)
    page.goto(
        f"{live.url}/clinic/admin/audit?lang={lang}&patient=demo-patient-jane-doe"
        "&since=2020-01-01&until=2099-12-31"
    )
    expect(page.locator("h2").first).to_be_visible()
    axe(page)
    screenshots(page, f"clinic-admin-audit-{lang}")
    page.goto(f"{live.url}/clinic/admin/audit?lang={lang}&patient=a%20b&since=x&until=y")
    expect(page.locator(".error-summary")).to_be_focused()
    axe(page)
    zoomed(page)


def test_invite_and_disable_with_the_keyboard(page: Page, live: Live) -> None:
    sign_in(page, live, live.access.admin_login, site="clinic")
    page.goto(f"{live.url}/clinic/admin/users")
    tab_to(page, "button:has-text('Send invitation')")
    page.keyboard.press("Enter")  # nothing filled in: the error state
    expect(page.locator(".error-summary")).to_be_focused()
    axe(page)
    tab_to(page, "#username")
    page.keyboard.type("keyboard-nurse")
    page.keyboard.press("Tab")
    page.keyboard.type("nurse@example.org")
    tab_to(page, "button:has-text('Send invitation')")
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_have_text("The invitation has been sent.")
    tab_to(page, "a[href$='/admin/users/keyboard-nurse']")
    page.keyboard.press("Enter")
    tab_to(page, "button:has-text('Disable account')")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Disable this account?")
    axe(page)
    tab_to(page, "button:has-text('Disable account')")
    page.keyboard.press("Enter")
    expect(page.locator(".summary-list")).to_contain_text("Disabled")


def test_the_front_desk_meets_the_403_page(page: Page, live: Live) -> None:
    sign_in(page, live, live.access.frontdesk_login, site="clinic")
    response = page.goto(f"{live.url}/clinic/admin/users?lang=fr")
    assert response is not None and response.status == 403
    axe(page)
