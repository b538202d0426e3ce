"""The report pages against the real app, store and Redis: staff sign in to the clinic
workspace, the pages read `$evaluate-measure` on seeded appointments and show its numbers
(in a figure's chart and table and in the CSV, "<11" where the server withheld one); bad
filters are errors on the page, and anyone but staff meets the 403 page."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from html import unescape
from typing import Any

import pytest
from babel.dates import format_date
from fastapi.testclient import TestClient

from fhir_server.fhir.instants import fhir_instant
from fhir_server.settings import Settings
from fhir_server.store.bulk_load import insert_first_versions
from tests.integration.auth_helpers import add_user, create, new_patient
from tests.integration.portal_support import CLINIC, portal_app, sign_in

REPORTS = f"{CLINIC}/reports"
TODAY = datetime.now(UTC).date()
FIRST = TODAY - timedelta(days=40)  # the seeded appointments' days: FIRST .. FIRST + 19
LAST = FIRST + timedelta(days=19)
PERIOD = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
# Seeded by final status: 30 attended, 12 missed, 5 cancelled (47 booked), one clinician.
SEEDED = {"fulfilled": 30, "noshow": 12, "cancelled": 5}
FREE_IN_DAYS = (2, 3, 5)  # free Slots ahead of today
MONDAY = TODAY - timedelta(days=TODAY.weekday())
THIRD_FREE = f"{(TODAY + timedelta(days=5) - MONDAY).days}.0"  # days from this Monday


def _appointment(patient: str, practitioner: str, day: date, status: str) -> dict[str, Any]:
    """A past appointment as an EHR syncs it: its final status, no Slot."""
    start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
        "created": (start - timedelta(days=3)).isoformat().replace("+00:00", "Z"),
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"},
        ],
    }


def _free_slot(schedule: str, day: date) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    return {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{schedule}"},
        "status": "free",
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
    }


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for client in portal_app(settings_factory):
        patient = new_patient(client, "Reported")
        practitioner = create(
            client, {"resourceType": "Practitioner", "name": [{"text": "Dr Ada Lovelace"}]}
        )
        number = 0
        for status, count in SEEDED.items():
            for _ in range(count):
                day = FIRST + timedelta(days=number % 20)
                create(client, _appointment(patient, practitioner, day, status))
                number += 1
        schedule = create(
            client,
            {
                "resourceType": "Schedule",
                "active": True,
                "actor": [
                    {"reference": f"Practitioner/{practitioner}", "display": "Dr Ada Lovelace"}
                ],
            },
        )
        # Written before this week's Monday, so this week's measure found them.
        before = fhir_instant(datetime.combine(MONDAY, time(), UTC) - timedelta(hours=1))
        slots = [
            (_free_slot(schedule, TODAY + timedelta(days=days)) | {"id": f"free{days}"}, before)
            for days in FREE_IN_DAYS
        ]
        client.portal.call(insert_first_versions, client.app.state.services.store, slots)
        add_user(client, "rep-desk", "frontdesk", None)
        add_user(client, "rep-admin", "admin", None)
        add_user(client, "rep-pat", "patient", f"Patient/{patient}")
        client.app.state.practitioner = practitioner  # type: ignore[attr-defined]
        # One report first, alone: it brings the rollups up to date with the seeding. (Nine
        # at once, as the dashboard asks, may find another runner folding the history and
        # answer from rollups not yet there; the reporting code's to settle.)
        sign_in(client, "rep-admin", "/clinic/", site=CLINIC)
        assert client.get(f"{REPORTS}/appointment-volume").status_code == 200
        yield client


@pytest.fixture
def desk(app: TestClient) -> TestClient:
    """The front desk, signed in to the clinic workspace."""
    app.cookies.clear()
    sign_in(app, "rep-desk", "/clinic/", site=CLINIC)
    return app


def _table(html: str, index: int = 0) -> list[list[str]]:
    """The cells of the page's `index`-th data table, header row first, tags stripped."""
    tables = re.findall(r"<table>(.*?)</table>", html, re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", tables[index], re.S)
    return [
        [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)
        ]
        for r in rows
    ]


def _chart_labels(html: str, index: int = 0) -> list[str]:
    charts = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    svg = base64.b64decode(charts[index]).decode()
    assert "<script" not in svg
    return [unescape(t) for t in re.findall(r'<text[^>]*class="value"[^>]*>([^<]*)</text>', svg)]


def test_the_dashboard_shows_every_metric_as_a_figure_with_its_table(desk: TestClient) -> None:
    # Up to today: this week's third next available was measured (the appointments end before).
    page = desk.get(f"{REPORTS}/", params=PERIOD | {"to": TODAY.isoformat()})
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert "<h1>Reports</h1>" in html
    assert html.count("<figure") == 9 and html.count("<figcaption") == 9
    assert html.count('<caption id="') == 9 and '<th scope="col"' in html
    assert html.count('<img class="report-figure__chart" src="data:image/svg+xml;base64,') == 9
    assert 'aria-current="page"' in html  # the Reports entry of the workspace menu
    # 3 subject lists, 9 evaluations, the names of third next available's Schedules
    assert page.headers["x-portal-fhir-calls"] == "13"
    # Appointment volume, the whole period: one row per number; the chart has the same.
    assert _table(html, 0) == [
        ["Number", "Whole period"],
        ["Booked", "47"],
        ["Attended", "30"],
        ["Cancelled", "<11"],
        ["Missed", "12"],
    ]
    assert sorted(_chart_labels(html, 0)) == ["12", "30", "47", "<11"]
    assert "&lt;11 means a number from 1 to 10" in html


def test_a_metric_page_is_broken_down_and_offers_its_csv(desk: TestClient) -> None:
    query = PERIOD | {"by": "practitioner"}
    page = desk.get(f"{REPORTS}/no-show-rate", params=query)
    assert page.status_code == 200, page.text[:500]
    rows = _table(page.text)
    assert rows[0] == ["Clinician", "Appointments due", "No-shows", "No-show rate"]
    assert rows[1] == ["All", "42", "12", "28.6%"]
    assert rows[2][0] == "Dr Ada Lovelace"
    assert "No-show rate, " in page.text and ", by clinician</figcaption>" in page.text
    link = re.search(r'href="(/clinic/reports/no-show-rate\.csv\?[^"]+)" download', page.text)
    assert link is not None
    download = desk.get(f"http://testserver{link.group(1).replace('&amp;', '&')}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"].startswith(
        'attachment; filename="no-show-rate-practitioner-'
    )
    text = download.content.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text)))[:2] == [
        ["Clinician", "Appointments due", "No-shows", "No-show rate"],
        ["All", "42", "12", "28.6"],
    ]


def test_third_next_available_names_each_calendar(desk: TestClient) -> None:
    page = desk.get(f"{REPORTS}/third-next-available")
    assert page.status_code == 200, page.text[:500]
    # Always by week: the weeks before the Slots were written have no value.
    rows = _table(page.text)
    assert rows[:3] == [["Week", "Dr Ada Lovelace"], ["All", THIRD_FREE], [rows[2][0], "\u2013"]]
    assert rows[-1] == [format_date(MONDAY, "d MMM y", locale="en"), THIRD_FREE]
    assert page.headers["x-portal-fhir-calls"] == "5"  # subjects, evaluation, Schedule names
    by_service = desk.get(f"{REPORTS}/third-next-available", params={"by": "service"})
    assert _table(by_service.text) == [
        ["Service", "Dr Ada Lovelace"],
        ["All", THIRD_FREE],
        ["unknown", THIRD_FREE],  # its Schedule names no HealthcareService
    ]


def test_demographics_count_patients_and_appointments(desk: TestClient) -> None:
    page = desk.get(f"{REPORTS}/patient-demographics", params=PERIOD)
    assert page.status_code == 200, page.text[:500]
    # One patient booked all 47: "<11" patients, 47 appointments (45 rounded in a stratum).
    assert _table(page.text, 1) == [
        ["Gender", "Patients booked", "Appointments booked"],
        ["All", "<11", "47"],
        ["Other", "<11", "45"],
    ]


def test_the_subject_filter_names_who_is_shown(app: TestClient, desk: TestClient) -> None:
    practitioner = app.app.state.practitioner  # type: ignore[attr-defined]
    query = PERIOD | {"subject": f"Practitioner/{practitioner}"}
    page = desk.get(f"{REPORTS}/appointment-volume", params=query)
    assert page.status_code == 200
    assert "Showing: Dr Ada Lovelace" in page.text
    assert f'<option value="Practitioner/{practitioner}" selected>' in page.text


def test_french_pages_translate_words_and_numbers(desk: TestClient) -> None:
    page = desk.get(f"{REPORTS}/no-show-rate", params=PERIOD | {"lang": "fr"})
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text and "<h1>Taux d\u2019absence</h1>" in page.text
    assert ["Taux d\u2019absence", "28,6\u00a0%"] in _table(page.text)


def test_bad_filters_are_errors_beside_the_form_and_nothing_breaks(desk: TestClient) -> None:
    bad = {"from": "2026-02-30", "to": LAST.isoformat(), "by": "colour"}
    page = desk.get(f"{REPORTS}/appointment-volume", params=bad)
    assert page.status_code == 400
    assert "<title>Error: Appointment volume" in page.text
    assert '<a href="#from">Enter the first day as a real date</a>' in page.text
    assert '<a href="#by">Choose a breakdown from the list</a>' in page.text
    assert 'aria-describedby="from-error"' in page.text
    assert "<figure" in page.text  # the default period's report, beside the errors
    # A breakdown the metric does not take (third next available takes week and service).
    refused = desk.get(f"{REPORTS}/third-next-available", params={"by": "gender"})
    assert refused.status_code == 400
    # A period the server refuses (over three years): its reason, no figure, no crash.
    long = desk.get(f"{REPORTS}/appointment-volume", params={"from": "2019-01-01"})
    assert long.status_code == 400 and "<figure" not in long.text
    assert "at most" in long.text and 'class="error-summary"' in long.text
    # The CSV of bad filters is the page with its errors, not a file.
    csv_refused = desk.get(f"{REPORTS}/no-show-rate.csv", params={"to": "yesterday"})
    assert csv_refused.status_code == 400 and "text/html" in csv_refused.headers["content-type"]


def test_an_unknown_metric_is_the_not_found_page(desk: TestClient) -> None:
    for path in ("/no-such-metric", "/no-such-metric.csv"):
        page = desk.get(f"{REPORTS}{path}")
        assert page.status_code == 404 and "<h1>Page not found</h1>" in page.text


def test_an_admin_may_open_them(app: TestClient) -> None:
    app.cookies.clear()
    sign_in(app, "rep-admin", "/clinic/", site=CLINIC)
    assert app.get(f"{REPORTS}/lead-time", params=PERIOD).status_code == 200


def test_a_patient_meets_the_403_page_and_a_visitor_signs_in(app: TestClient) -> None:
    app.cookies.clear()
    for path in ("/", "/no-show-rate", "/no-show-rate.csv"):
        visitor = app.get(f"{REPORTS}{path}", follow_redirects=False)
        assert visitor.status_code == 303
        assert visitor.headers["location"].startswith("/clinic/sign-in?next=%2Fclinic%2Freports")
    sign_in(app, "rep-pat", "/clinic/", site=CLINIC)
    for path in ("/", "/no-show-rate", "/no-show-rate.csv"):
        refused = app.get(f"{REPORTS}{path}")
        assert refused.status_code == 403
        assert "<h1>You cannot see this page</h1>" in refused.text
        assert "report-figure" not in refused.text
