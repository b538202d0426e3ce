"""The front desk in Chromium: a patient found and booked for with the keyboard alone, the
desk's pages axe-clean in English and French and in their error states, fitting at 320 px
and 200% zoom (screenshots at 320 and 1280 px), and a clinician's day list as it prints."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    SCREENSHOTS,
    Live,
    axe,
    focus_visible,
    screenshots,
    sign_in,
    tab_to,
)
from tests.e2e.test_portal_booking import (
    choose_first,
    go,
    summary_leads_to_its_field,
    to_a_week_with_free_times,
)


def look(page: Page, name: str) -> None:
    axe(page)
    screenshots(page, f"clinic-desk-{name}")


def test_a_booking_for_a_patient_with_the_keyboard_alone(page: Page, live: Live) -> None:
    sign_in(page, live, live.access.frontdesk_login, site="clinic")
    page.goto(f"{live.url}/clinic/")
    tab_to(page, "nav.site-sections a[href='/clinic/desk']")
    go(page)
    tab_to(page, "#name")
    page.keyboard.type("Tom Baker")
    tab_to(page, "main form button[type=submit]")
    go(page)
    look(page, "found")
    tab_to(page, "main table a")
    go(page)
    expect(page.locator("h1")).to_have_text("Tom Baker")
    look(page, "patient")
    tab_to(page, "main a[href*='/book/service']")
    go(page)
    expect(page.locator(".acting-for")).to_contain_text("Tom Baker (1978-11-23)")
    look(page, "book-service")
    choose_first(page)  # the first service
    choose_first(page)  # anyone available
    to_a_week_with_free_times(page, "clinic-desk-book-day")
    choose_first(page)  # the first day with free times
    choose_first(page)  # its first time: held
    expect(page).to_have_url(re.compile(r"/clinic/book/check"))
    tab_to(page, "main form button[type=submit]")
    go(page)  # without a reason: an error, nothing booked
    summary_leads_to_its_field(page)
    look(page, "book-check-error")
    page.keyboard.type("Booked by phone")
    tab_to(page, "main form button[type=submit]")
    focus_visible(page)
    go(page)
    expect(page.locator(".panel h1")).to_have_text("Appointment booked")
    expect(page.locator("main")).to_contain_text("Booked by phone")
    look(page, "booked")
    tab_to(page, "main a[href*='/desk/day?']")
    go(page)
    expect(page.locator("main table")).to_contain_text("Tom Baker")
    look(page, "day-list")
    page.emulate_media(media="print")  # one clinician's list, without the page around it
    expect(page.locator(".site-header")).to_be_hidden()
    expect(page.locator("main form")).to_be_hidden()
    expect(page.locator("main table")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "clinic-desk-day-print.png"), full_page=True)
    page.emulate_media(media="screen")
    page.go_back()
    tab_to(page, "main a[href$='/cancel']")
    go(page)
    look(page, "cancel")
    assert page.csp_violations == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_desk_pages_are_axe_clean_with_their_errors(page: Page, live: Live, lang: str) -> None:
    sign_in(page, live, live.access.frontdesk_login, site="clinic")
    page.goto(f"{live.url}/clinic/desk?lang={lang}")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    look(page, f"find-{lang}")
    tab_to(page, "main form button[type=submit]")
    go(page)  # nothing typed
    summary_leads_to_its_field(page)
    look(page, f"find-error-{lang}")

    page.goto(f"{live.url}/clinic/desk/register")
    look(page, f"register-{lang}")
    page.locator("main form button[type=submit]").click()
    summary_leads_to_its_field(page)
    look(page, f"register-error-{lang}")
    # Jane Doe of the demo, as a caller gives her: she is found, not registered again.
    page.locator("#given").fill("Jane")
    page.locator("#family").fill("DOE")
    page.locator("#birthdate").fill("1990-04-02")
    page.locator("#phone").fill("212 555 0142")
    page.locator("main form button[type=submit]").click()
    expect(page.locator("#matches")).to_be_visible()
    expect(page.locator("main table")).to_contain_text("Jane Doe")
    look(page, f"register-matches-{lang}")

    page.goto(f"{live.url}/clinic/desk/day")
    look(page, f"day-{lang}")
