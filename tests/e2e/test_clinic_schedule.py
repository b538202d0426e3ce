"""The clinic workspace's schedule in Chromium: day, week and requests pages axe-clean in
English and French (and the requests page's error state), fitting at 320 px with their
screenshots, and a check-in then its outcome recorded with the keyboard alone.

The visits are written to the live server's store beforehand (setup): one that started ten
minutes ago with the demo practitioner, and a request waiting for their confirmation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from fhir_server.app import create_app
from fhir_server.fhir.instants import fhir_instant
from fhir_server.settings import Settings
from tests.e2e.conftest import Live, axe, screenshots, sign_in, tab_to

ZONE = ZoneInfo("America/New_York")  # the demo practitioner's clinic
ROLE = "PractitionerRole/demo-role-ada-okafor"


async def _create(settings: Settings, resources: list[dict[str, Any]]) -> list[str]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        store = app.state.services.store
        return [str((await store.create(resource)).id) for resource in resources]


def _visit(start: datetime, status: str, provider: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": fhir_instant(start),
        "end": fhir_instant(start + timedelta(minutes=30)),
        "participant": [
            {"actor": {"reference": "Patient/demo-patient-jane-doe"}, "status": "accepted"},
            {"actor": {"reference": ROLE}, "status": provider},
            {
                "actor": {"reference": "HealthcareService/demo-service-nyc-primary-care"},
                "status": "accepted",
            },
        ],
    }


@pytest.fixture(scope="module")
def visits(live: Live) -> Iterator[dict[str, Any]]:
    """A visit that started ten minutes ago and a request for tomorrow: their ids and days."""
    started = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    tomorrow = started + timedelta(days=1)
    resources = [_visit(started, "booked", "accepted"), _visit(tomorrow, "pending", "needs-action")]
    with ThreadPoolExecutor(1) as loader:  # the browser's sync API may run a loop here
        ids = loader.submit(asyncio.run, _create(live.settings, resources)).result()
    yield {"visit": ids[0], "request": ids[1], "day": started.astimezone(ZONE).date().isoformat()}


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_schedule_and_requests_pages_are_axe_clean_and_fit(
    page: Page, live: Live, visits: dict[str, Any], lang: str
) -> None:
    sign_in(page, live, live.access.frontdesk_login, site="clinic")
    for name, path in (
        ("day", f"/clinic/schedule?day={visits['day']}&lang={lang}"),
        ("week", f"/clinic/schedule/week?day={visits['day']}&lang={lang}"),
        ("requests", f"/clinic/requests?lang={lang}"),
    ):
        page.goto(f"{live.url}{path}")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        axe(page)
        screenshots(page, f"clinic-schedule-{name}-{lang}")
    decline = page.locator(f"form[action='/clinic/requests/{visits['request']}/decline'] button")
    decline.click()  # no reason given: the error state
    expect(page.locator(".error-summary")).to_be_visible()
    assert page.title().startswith("Error:" if lang == "en" else "Erreur :")
    axe(page)
    screenshots(page, f"clinic-requests-error-{lang}")


def test_check_in_and_outcome_with_the_keyboard_alone(
    page: Page, live: Live, visits: dict[str, Any]
) -> None:
    sign_in(page, live, live.access.practitioner_login, site="clinic")
    page.goto(f"{live.url}/clinic/")
    expect(page).to_have_url(f"{live.url}/clinic/schedule")  # a practitioner's landing page
    page.goto(f"{live.url}/clinic/schedule?day={visits['day']}")
    row = f"#visit-{visits['visit']}"
    expect(page.locator(row)).to_contain_text("Booked")
    action = f"form[action='/clinic/schedule/visits/{visits['visit']}']"
    tab_to(page, f"{action}:has(input[value=arrived]) button")
    page.keyboard.press("Enter")
    expect(page.locator(row)).to_contain_text("Arrived")
    tab_to(page, f"{action}:has(input[value=fulfilled]) button")
    page.keyboard.press("Enter")
    expect(page.locator(row)).to_contain_text("Completed")
    expect(page.locator(f"{action} button")).to_have_count(0)
