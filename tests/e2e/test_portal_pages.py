"""The portal's foundation pages in Chromium (start, home, account, calendar feed, signed
out, not found, an expired form): axe-clean in English and French, no sideways scroll at
320 px or 200% zoom, the skip link and every control reached and used with the keyboard,
focus visible."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Live, axe, focus_visible, screenshots, sign_in, tab_to, zoomed

LANGS = ["en", "fr"]


@pytest.mark.parametrize("lang", LANGS)
def test_start_page_skip_link_and_language_switch(page: Page, live: Live, lang: str) -> None:
    page.goto(f"{live.url}/portal/?lang={lang}")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    axe(page)
    screenshots(page, f"portal-start-{lang}")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    other = "fr" if lang == "en" else "en"
    page.locator(f"header a[hreflang={other}]").click()
    expect(page.locator("html")).to_have_attribute("lang", other)


def test_registration_link_opens_the_auth_page_in_the_portal_language(
    page: Page, live: Live
) -> None:
    page.goto(f"{live.url}/portal/?lang=fr")
    tab_to(page, "a[href$='/register']")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/auth/register\?ui_locales=fr"))
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    axe(page)


@pytest.mark.parametrize("lang", LANGS)
def test_signed_in_pages_are_axe_clean_and_fit(page: Page, live: Live, lang: str) -> None:
    sign_in(page, live)
    pages = (
        ("/portal/", "home"),
        ("/portal/account", "account"),
        ("/portal/calendar-feed", "feed"),
    )
    for path, name in pages:
        page.goto(f"{live.url}{path}?lang={lang}")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        axe(page)
        screenshots(page, f"portal-{name}-{lang}")
    page.locator("form[action$='/calendar-feed'] button").click()  # the link, shown once
    expect(page.locator("#feed-url")).to_have_value(re.compile(r"/calendar/.+\.ics$"))
    axe(page)
    zoomed(page)
    screenshots(page, f"portal-feed-link-{lang}")
    page.goto(f"{live.url}/portal/no-such-page?lang={lang}")
    axe(page)
    zoomed(page)

    page.goto(f"{live.url}/portal/?lang={lang}")
    page.locator("input[name=csrf]").first.evaluate("input => { input.value = 'x'; }")
    page.locator("form[action$='/sign-out'] button").first.click()  # a forged form
    expect(page).to_have_url(re.compile(r"/portal/sign-out$"))
    axe(page)
    zoomed(page)


def test_sign_out_with_the_keyboard(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto(f"{live.url}/portal/")
    tab_to(page, "header form[action$='/sign-out'] button")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/portal/signed-out"))
    axe(page)
    screenshots(page, "portal-signed-out")
