"""The report pages in Chromium on the demo clinic: the dashboard and a metric page (and its
error state) axe-clean in English and French and fitting at 320 px (screenshots at 320 and
1280 px), and the filters used with the keyboard alone. The front desk signs in once a test."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Live, axe, screenshots, sign_in, tab_to, zoomed

FIRST_REPORT_MS = 180_000


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_report_pages_are_axe_clean_and_fit(page: Page, live: Live, lang: str) -> None:
    sign_in(page, live, live.access.frontdesk_login, site="clinic")
    # Within a minute of loading the demo, each report folds the whole demo history again
    # (the rollups re-read the last minute): the first dashboard may take a while.
    page.goto(f"{live.url}/clinic/reports/?lang={lang}", timeout=FIRST_REPORT_MS)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("figure")).to_have_count(9)
    expect(page.locator("figure img").first).to_have_js_property("complete", True)
    assert page.locator("figure img").first.evaluate("img => img.naturalWidth") > 0
    axe(page)
    screenshots(page, f"clinic-reports-{lang}")

    page.goto(f"{live.url}/clinic/reports/appointment-volume?by=period-week&lang={lang}")
    expect(page.locator("figure table tbody tr").first).to_be_visible()
    axe(page)
    screenshots(page, f"clinic-reports-volume-{lang}")

    page.goto(f"{live.url}/clinic/reports/no-show-rate?from=2026-02-30&lang={lang}")
    expect(page.locator(".error-summary")).to_be_focused()
    assert page.title().startswith("Error: " if lang == "en" else "Erreur")
    axe(page)
    zoomed(page)
    assert page.csp_violations == []  # type: ignore[attr-defined]


def test_the_filters_work_with_the_keyboard(page: Page, live: Live) -> None:
    sign_in(page, live, live.access.frontdesk_login, site="clinic")
    page.goto(f"{live.url}/clinic/reports/no-show-rate", timeout=FIRST_REPORT_MS)
    tab_to(page, "#from")
    before = page.locator("#from").input_value()
    page.keyboard.press("ArrowDown")  # one less in the date's first part (day or month)
    first = page.locator("#from").input_value()
    assert first and first != before
    tab_to(page, "#by")
    page.keyboard.press("ArrowDown")  # the first breakdown: day
    page.keyboard.press("ArrowDown")  # week
    tab_to(page, ".report-filters button[type=submit]")
    with page.expect_navigation(timeout=FIRST_REPORT_MS):
        page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/clinic/reports/no-show-rate\?.*by=period-week"))
    assert f"from={first}" in page.url
    expect(page.locator("figure table thead th").first).to_have_text("Week")
    # The table's scrolling region and the CSV link are reached with Tab too.
    tab_to(page, ".table-scroll")
    tab_to(page, "a[download]")
    assert "by=period-week" in (page.locator("a[download]").first.get_attribute("href") or "")
