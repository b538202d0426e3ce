"""The availability editor and the closures page in Chromium: axe-clean in English and
French and in an error state, fitting at 320 px, and saved with the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Live, axe, screenshots, sign_in, tab_to

ADA_ROLE = "demo-role-ada-okafor"


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_editor_and_its_errors_are_axe_clean_and_fit(page: Page, live: Live, lang: str) -> None:
    sign_in(page, live, live.access.practitioner_login, site="clinic")
    page.goto(f"{live.url}/clinic/availability?lang={lang}")
    page.wait_for_url(f"**/clinic/availability/{ADA_ROLE}*")
    expect(page.locator("#mon-1-start")).to_have_value("08:30")
    axe(page)
    screenshots(page, f"clinic-availability-{lang}")
    # End before start, and overlapping pairs: the summary links to each field.
    page.locator("#mon-1-end").fill("08:00")
    page.locator("#tue-2-start").fill("09:00")
    page.locator("#tue-2-end").fill("10:00")
    page.locator("main button[type=submit].button").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary.locator('a[href="#mon-1-end"]')).to_be_visible()
    expect(summary.locator('a[href="#tue-2-start"]')).to_be_visible()
    axe(page)
    screenshots(page, f"clinic-availability-error-{lang}")
    summary.locator('a[href="#mon-1-end"]').click()
    expect(page.locator("#mon-1-end")).to_be_focused()


def test_copying_times_and_saving_with_the_keyboard_alone(page: Page, live: Live) -> None:
    sign_in(page, live, live.access.practitioner_login, site="clinic")
    page.goto(f"{live.url}/clinic/availability/{ADA_ROLE}")
    # Monday's times to Tuesday (the same hours already: the demo clinic stays as it is).
    tab_to(page, "details.copy summary")
    page.keyboard.press("Enter")
    tab_to(page, "#copy-mon-tue")
    page.keyboard.press("Space")
    expect(page.locator("#copy-mon-tue")).to_be_checked()
    tab_to(page, "main button[type=submit].button", limit=300)
    page.keyboard.press("Enter")
    page.wait_for_url("**saved=1")
    expect(page.locator(".notice[role=status]")).to_be_visible()
    expect(page.locator("#tue-1-start")).to_have_value("08:30")
    expect(page.locator("#tue-1-end")).to_have_value("16:30")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_closures_and_their_errors_are_axe_clean_and_fit(page: Page, live: Live, lang: str) -> None:
    sign_in(page, live, live.access.admin_login, site="clinic")
    page.goto(f"{live.url}/clinic/closures?lang={lang}")
    axe(page)
    page.locator('a[href="/clinic/closures/demo-location-london"]').click()
    expect(page.locator("#calendar")).to_be_checked()  # the address's calendar (GB)
    axe(page)
    screenshots(page, f"clinic-closures-{lang}")
    page.locator("#calendar-other").check()
    page.locator("#calendar-code").fill("Narnia")
    page.locator("main button[type=submit].button").click()
    expect(page.locator(".error-summary a[href='#calendar-code']")).to_be_visible()
    axe(page)
    screenshots(page, f"clinic-closures-error-{lang}")
