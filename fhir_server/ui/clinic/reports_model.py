"""What the report pages offer and ask: the metrics, their words, the filters. Pure, no I/O.

The metrics are the server's Measures (ids fixed by the reporting contract);
each page asks `Measure/{id}/$evaluate-measure` for a period, optionally one
subject (a Location, Practitioner or HealthcareService) and one breakdown (a
stratifier). Words are gettext message ids (`N_`), translated by the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from babel.dates import format_date

from fhir_server.ui.measure_tables import SCORE, Column, ReportTable, Row


def N_(message: str) -> str:
    """Mark a message id for extraction; the page translates it."""
    return message


# The default period: the last twelve weeks, today included.
DEFAULT_DAYS = 84
SUBJECT_TYPES = ("Location", "Practitioner", "HealthcareService")
_SUBJECT = re.compile(r"(Location|Practitioner|HealthcareService)/[A-Za-z0-9\-.]{1,64}")

BREAKDOWNS = {
    "period-day": N_("Day"),
    "period-week": N_("Week"),
    "period-month": N_("Month"),
    "practitioner": N_("Clinician"),
    "service": N_("Service"),
    "location": N_("Location"),
    "appointment-type": N_("Appointment type"),
    "age-band": N_("Age band"),
    "gender": N_("Gender"),
    "postal-district": N_("Postal district"),
}
_PERIODS = ("period-day", "period-week", "period-month")
_ALL = tuple(BREAKDOWNS)
# What the server breaks Slot-based metrics down by (Slots have no patient or type).
_SLOTS = ("period-day", "period-week", "period-month", "practitioner", "service", "location")


@dataclass(frozen=True)
class Metric:
    """One report page: the Measure it evaluates and how its numbers are named."""

    id: str
    title: str
    summary: str  # one sentence: what it counts (the README has the full definition)
    groups: Mapping[str, str] = field(default_factory=dict)  # group code -> name
    populations: Mapping[str, str] = field(default_factory=dict)  # population -> name
    breakdowns: tuple[str, ...] = _ALL
    # Breakdowns every report of the metric carries: without a chosen one, the page shows
    # a figure for each (the dashboard the first).
    always: tuple[str, ...] = ()


_RATE = {"denominator": N_("Appointments due"), "numerator": N_("No-shows")}

METRICS = (
    Metric(
        "appointment-volume",
        N_("Appointment volume"),
        N_("Appointments by outcome, by the day they were for."),
        {
            "booked": N_("Booked"),
            "attended": N_("Attended"),
            "cancelled": N_("Cancelled"),
            "missed": N_("Missed"),
        },
    ),
    Metric(
        "no-show-rate",
        N_("No-show rate"),
        N_("Missed appointments out of those due (attended, arrived or missed)."),
        {},
        {**_RATE, SCORE: N_("No-show rate")},
    ),
    Metric(
        "late-cancellation-rate",
        N_("Late cancellations"),
        N_("Appointments cancelled shortly before their start, out of those due."),
        {"patient": N_("By the patient"), "clinic": N_("By the clinic"), "all": N_("All")},
        {
            "denominator": N_("Appointments due"),
            "numerator": N_("Late cancellations"),
            SCORE: N_("Rate"),
        },
    ),
    Metric(
        "lead-time",
        N_("Lead time"),
        N_("Time from booking to the appointment."),
        {
            "same-day": N_("Same day"),
            "1-day": N_("1 day"),
            "2-7-days": N_("2 to 7 days"),
            "over-7-days": N_("Over 7 days"),
            "median": N_("Median (days)"),
        },
    ),
    Metric(
        "third-next-available",
        N_("Third next available"),
        N_(
            "Days from each Monday to the third next free appointment, per calendar, as the "
            "calendars stood that Monday."
        ),
        {},
        {SCORE: N_("Days")},
        ("period-week", "service"),
        always=("period-week",),
    ),
    Metric(
        "slot-utilisation",
        N_("Slot utilisation"),
        N_("Booked time out of bookable time, and the open time still ahead."),
        {"utilisation": "", "open-ahead": N_("Open minutes ahead")},
        {
            "denominator": N_("Minutes bookable"),
            "numerator": N_("Minutes booked"),
            SCORE: N_("Utilisation"),
        },
        _SLOTS,
    ),
    Metric(
        "booking-channel",
        N_("Booking channels"),
        N_("Where appointments were booked."),
        {
            "portal": N_("Patient portal"),
            "clinic": N_("Clinic workspace"),
            "app": N_("App or API"),
            "ehr": N_("EHR"),
        },
    ),
    Metric(
        "reminder-effect",
        N_("Reminder effect"),
        N_(
            "No-show rate with and without a delivered reminder. Observational: other "
            "differences between the two groups may explain part of it."
        ),
        {"reminded": N_("Reminded"), "not-reminded": N_("Not reminded")},
        {**_RATE, SCORE: N_("No-show rate")},
    ),
    Metric(
        "patient-demographics",
        N_("Patients booked"),
        N_("Patients with an appointment in the period, by age band, gender and area."),
        {"booked-patients": N_("Patients booked"), "appointments": N_("Appointments booked")},
        always=("age-band", "gender", "postal-district"),
    ),
)
BY_ID = {metric.id: metric for metric in METRICS}
_GENERIC = {"initial-population": N_("Count"), SCORE: N_("Result")}


def column_name(metric: Metric, table: ReportTable, column: Column) -> list[str]:
    """A column's header as parts to translate and join with ": ": the group's name when
    the group has one number, the population's when the report has one group, else both.
    A group this page does not know and the report names (a Schedule's) goes by that name;
    one named "" is the metric's main group, its numbers named by population alone."""
    group = metric.groups.get(column.group, column.label)
    population = metric.populations.get(column.population) or _GENERIC.get(
        column.population, column.population
    )
    named_by_report = column.group not in metric.groups and column.label != column.group
    if named_by_report:
        return [group]
    if len({c.group for c in table.columns}) == 1 and column.population != "initial-population":
        return [population]
    if sum(1 for c in table.columns if c.group == column.group) == 1:
        return [group]
    return [group, population] if group else [population]


GENDERS = {
    "female": N_("Female"),
    "male": N_("Male"),
    "other": N_("Other"),
    "unknown": N_("Unknown"),
}


def stratum_name(by: str, row: Row, locale: str) -> str:
    """A stratum's row header: a date in the reader's language for period strata (a
    week by its Monday, a month as `2026-11`), a gender's name (a message id), else the
    report's name."""
    day = _day(f"{row.key}-01" if by == "period-month" else row.key) if by in _PERIODS else None
    if day is not None:
        if by == "period-month":
            return str(format_date(day, "MMMM y", locale=locale))
        return str(format_date(day, "d MMM y", locale=locale))
    if by == "gender":
        return GENDERS.get(row.key, row.label)
    return row.label


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    subject: str = ""  # "Practitioner/x", or "" for the whole clinic
    by: str = ""  # a stratifier, or "" for the totals only

    def query(self) -> dict[str, str]:
        """The filters as the page's own query string (for links and the CSV)."""
        query = {"from": self.start.isoformat(), "to": self.end.isoformat()}
        return (
            query
            | ({"subject": self.subject} if self.subject else {})
            | ({"by": self.by} if self.by else {})
        )

    def parameters(self) -> list[tuple[str, str]]:
        """The `$evaluate-measure` query parameters."""
        params = [("periodStart", self.start.isoformat()), ("periodEnd", self.end.isoformat())]
        if self.subject:
            params.append(("subject", self.subject))
        if self.by:
            params.append(("stratifier", self.by))
        return params


@dataclass(frozen=True)
class FilterError:
    message: str  # a message id
    field: str  # the input's id


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def parse_filters(
    query: Mapping[str, str], metric: Metric | None, today: date
) -> tuple[Filters, list[FilterError]]:
    """The filters of a page's query string, with what is wrong in it. Anything wrong
    falls back to its default, so the page still shows a report beside the errors. Without
    a metric (the dashboard) there is no breakdown, and `by` is ignored."""
    errors = []
    default_start = today - timedelta(days=DEFAULT_DAYS - 1)
    start = _day(query.get("from")) if query.get("from") else default_start
    if start is None:
        errors.append(FilterError(N_("Enter the first day as a real date"), "from"))
    end = _day(query.get("to")) if query.get("to") else today
    if end is None:
        errors.append(FilterError(N_("Enter the last day as a real date"), "to"))
    start, end = start or default_start, end or today
    if end < start:
        errors.append(FilterError(N_("The last day must be on or after the first day"), "to"))
        start, end = default_start, today
    subject = query.get("subject", "")
    if subject and not _SUBJECT.fullmatch(subject):
        errors.append(
            FilterError(N_("Choose a clinician, service or location from the list"), "subject")
        )
        subject = ""
    by = query.get("by", "") if metric else ""
    if metric and by and by not in metric.breakdowns:
        errors.append(FilterError(N_("Choose a breakdown from the list"), "by"))
        by = ""
    return Filters(start, end, subject, by), errors


def schedule_name(schedule: Mapping[str, Any]) -> str:
    """A Schedule as staff know it: its actors' names (clinician, service, place), else its
    comment, else its reference."""
    names = [str(a["display"]) for a in schedule.get("actor", []) if a.get("display")]
    return ", ".join(names) or str(schedule.get("comment") or f"Schedule/{schedule.get('id')}")
