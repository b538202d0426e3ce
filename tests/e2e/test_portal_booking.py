"""The booking pages in Chromium: a whole booking, a reschedule and a cancellation done with
the keyboard alone (Tab, arrow keys, Enter; focus always visible), every page axe-clean and
without sideways scroll at 320 px and 200% zoom, in English and French and in its error
state (the error summary takes focus and links to the field). Screenshots of each page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Live, axe, focus_visible, screenshots, sign_in, tab_to, zoomed


def go(page: Page) -> None:
    """Press Enter on the focused link or button and wait for the page it leads to."""
    with page.expect_navigation():
        page.keyboard.press("Enter")


def look(page: Page, name: str) -> None:
    """axe-clean, fits at 320 px, 1280 px and 200% zoom (screenshots)."""
    axe(page)
    screenshots(page, name)


def at(page: Page, step: str) -> None:
    """On booking step `step` (its URL), which is axe-clean and fits (screenshots)."""
    expect(page).to_have_url(re.compile(rf"/portal/book/{step}"))
    look(page, f"book-{step}")


def choose_first(page: Page) -> None:
    """Keyboard only: Tab into the page's radios, arrow to the first, Tab to the button,
    Enter."""
    tab_to(page, "main input[type=radio]")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")  # arrows move and check: the first is now chosen
    expect(page.locator("main input[type=radio]").first).to_be_checked()
    focus_visible(page)
    tab_to(page, "main form button[type=submit]")
    go(page)


def to_a_week_with_free_times(page: Page, name: str) -> None:
    """On the day page: while the week shown has no free time (it says when the next one
    is), go to the next week with the keyboard."""
    for _ in range(4):
        if page.locator("main input[type=radio]").count():
            return
        expect(page.locator("main")).to_contain_text(re.compile(r"(next free time|prochain)"))
        look(page, f"{name}-empty-week")
        tab_to(page, "main nav a:last-child")
        go(page)
    raise AssertionError("no week with free times")


def error_state(page: Page, name: str) -> None:
    """Continue without choosing: the error summary takes focus and its link reaches the
    first radio; the page is still axe-clean. (A day the flow carries is pre-chosen:
    cleared first.)"""
    page.locator("main input[type=radio]").evaluate_all("l => l.forEach(e => e.checked = false)")
    tab_to(page, "main form button[type=submit]")
    go(page)
    summary_leads_to_its_field(page)
    look(page, f"{name}-error")


def summary_leads_to_its_field(page: Page) -> None:
    """An error page: its summary has focus; Tab then Enter on its first link focuses the
    field it names."""
    expect(page).to_have_title(re.compile(r"^(Error|Erreur)"))
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    link = summary.get_by_role("link").first
    target = str(link.get_attribute("href"))
    page.keyboard.press("Tab")
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(target)).to_be_focused()


def test_book_reschedule_and_cancel_with_the_keyboard_alone(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto(f"{live.url}/portal/")
    tab_to(page, "main a[href$='/book']")
    go(page)
    at(page, "service")
    error_state(page, "book-service")
    choose_first(page)
    at(page, "clinician")
    choose_first(page)  # anyone available
    to_a_week_with_free_times(page, "book-day")
    at(page, "day")
    error_state(page, "book-day")
    choose_first(page)
    expect(page.locator("main legend").first).to_have_text(re.compile(r"^Choose a time on "))
    at(page, "time")
    choose_first(page)
    at(page, "check")
    tab_to(page, "main form button[type=submit]")
    go(page)
    expect(page.locator(".panel h1")).to_be_visible()
    booked_url = page.url
    look(page, "book-confirmation")

    tab_to(page, "main a[href$='/reschedule']")
    go(page)
    while "/book/check" not in page.url:  # day, then time: the first free ones
        step = page.url.split("/book/")[-1].split("?")[0]
        if step == "day":
            to_a_week_with_free_times(page, "reschedule-day")
        look(page, f"reschedule-{step}")
        choose_first(page)
    expect(page.get_by_text("Previous time", exact=True)).to_be_visible()
    look(page, "reschedule-check")
    tab_to(page, "main form button[type=submit]")
    go(page)
    expect(page.locator(".panel h1")).to_be_visible()
    assert page.url != booked_url

    tab_to(page, "main a[href$='/cancel']")
    go(page)
    expect(page).to_have_url(re.compile(r"/cancel$"))
    look(page, "cancel")
    tab_to(page, "#reason")
    page.keyboard.type("Feeling better")
    tab_to(page, "main form button[type=submit]")
    go(page)
    expect(page.locator("main")).to_contain_text(re.compile("[Cc]ancelled"))
    look(page, "cancelled")

    page.goto(f"{live.url}/portal/appointments")
    look(page, "appointments")


def test_booking_pages_in_french_with_their_errors(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto(f"{live.url}/portal/book?lang=fr")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    axe(page)
    error_state(page, "book-service-fr")
    choose_first(page)
    axe(page)
    choose_first(page)
    to_a_week_with_free_times(page, "book-day-fr")
    look(page, "book-day-fr")
    error_state(page, "book-day-fr")
    choose_first(page)
    look(page, "book-time-fr")
    error_state(page, "book-time-fr")
    choose_first(page)
    look(page, "book-check-fr")
    page.goto(f"{live.url}/portal/appointments?lang=fr")
    look(page, "appointments-fr")
    zoomed(page)
