"""The clinic workspace's foundation pages in Chromium: the start page, a staff member's home
and the 403 page a patient meets, axe-clean in English and French, fitting at 320 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Live, axe, screenshots, sign_in


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_start_and_staff_home_are_axe_clean_and_fit(page: Page, live: Live, lang: str) -> None:
    page.goto(f"{live.url}/clinic/?lang={lang}")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    axe(page)
    screenshots(page, f"clinic-start-{lang}")
    sign_in(page, live, live.access.frontdesk_login, site="clinic")
    page.goto(f"{live.url}/clinic/?lang={lang}")
    expect(page.locator("nav.site-sections")).to_be_visible()
    axe(page)
    screenshots(page, f"clinic-home-{lang}")


def test_a_patient_meets_the_403_page(page: Page, live: Live) -> None:
    sign_in(page, live, site="clinic")
    response = page.goto(f"{live.url}/clinic/")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("You cannot see this page")
    axe(page)
