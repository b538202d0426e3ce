"""The Measure resources this server publishes and the MeasureReport of an evaluation.

One `Definition` per metric: its Measure (id, canonical url, title, the
README's definition as description), the rollups it reads, the stratifiers
it takes. `evaluate` answers a summary MeasureReport with every figure
passed through `suppression` (see `/work/reports-contract.md` for the shape
the report pages read).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from fhir_server.fhir.errors import BadRequest, NotFound
from fhir_server.reporting import metrics, suppression
from fhir_server.reporting.metrics import Metric, Query
from fhir_server.reporting.rollups import ALL, APPOINTMENTS, PATIENTS, SLOTS, Source
from fhir_server.reporting.suppression import Figures, Shown
from fhir_server.store.clock import to_instant
from fhir_server.store.report_store import ReportStore

BASE: Final = "https://clinic-booking.example.org/fhir"
GROUP_SYSTEM: Final = f"{BASE}/CodeSystem/report-group"
STRATIFIER_SYSTEM: Final = f"{BASE}/CodeSystem/report-stratifier"
SUPPRESSED_URL: Final = f"{BASE}/StructureDefinition/report-suppressed"
ROUNDED_URL: Final = f"{BASE}/StructureDefinition/report-rounded"
POPULATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-population"
SUBJECT_KINDS: Final = {
    "Location": "location",
    "Practitioner": "practitioner",
    "PractitionerRole": "practitioner",
    "HealthcareService": "service",
}
# What an evaluation may split by: the rollups' stratifier tables, and periods of days.
APPOINTMENT_STRATIFIERS: Final = (
    *(s for s in APPOINTMENTS.stratifiers if s != "none"),
    *metrics.PERIOD_STRATIFIERS,
)
SLOT_STRATIFIERS: Final = (
    *(s for s in SLOTS.stratifiers if s != "none"),
    *metrics.PERIOD_STRATIFIERS,
)
MAX_PERIOD_DAYS: Final = 3 * 366
_DAYS_UNIT: Final = {"unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
_SUPPRESSED: Final = {"url": SUPPRESSED_URL, "valueString": "<11"}


@dataclass(frozen=True)
class Definition:
    id: str
    title: str
    description: str
    source: Source
    metric: Metric | None  # None: computed otherwise (third next available)
    stratifiers: tuple[str, ...]
    always: tuple[str, ...] = ()  # stratifiers every report of it carries
    days: bool = False  # the score is in days (else a proportion)

    def measure(self) -> dict[str, Any]:
        return {
            "resourceType": "Measure",
            "id": self.id,
            "url": f"{BASE}/Measure/{self.id}",
            "name": "".join(part.title() for part in self.id.split("-")),
            "title": self.title,
            "status": "active",
            "description": self.description,
            "scoring": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/measure-scoring",
                        "code": "proportion"
                        if self.metric and not self.days
                        else "continuous-variable",
                    }
                ]
            },
        }


DEFINITIONS: Final = (
    Definition(
        "appointment-volume",
        "Appointment volume",
        "Appointments by their start date in the period: booked (every appointment that was "
        "booked, whatever became of it), attended (fulfilled, arrived or checked-in), "
        "cancelled, missed (noshow). Holds that lapsed, proposals and entries in error are "
        "not counted.",
        APPOINTMENTS,
        metrics.volume,
        APPOINTMENT_STRATIFIERS,
    ),
    Definition(
        "no-show-rate",
        "No-show rate",
        "noshow / (fulfilled + arrived + noshow), appointments by start date in the period; "
        "cancelled ones are excluded.",
        APPOINTMENTS,
        metrics.no_show_rate,
        APPOINTMENT_STRATIFIERS,
    ),
    Definition(
        "late-cancellation-rate",
        "Late cancellation rate",
        "Appointments cancelled less than H hours (setting FHIR_REPORT_LATE_CANCEL_HOURS, "
        "default 24) before their start / appointments due (booked) by start date in the "
        "period; patient-initiated when the cancelationReason has an R4 "
        "appointment-cancellation-reason code starting with pat, else clinic-initiated; the "
        "time of cancellation is that of the first cancelled version in the history.",
        APPOINTMENTS,
        metrics.late_cancellation_rate,
        APPOINTMENT_STRATIFIERS,
    ),
    Definition(
        "lead-time",
        "Lead time from booking to start",
        "Calendar days (clinic time zone) from booking (Appointment.created, else the first "
        "booked version) to the start, of appointments by start date in the period: buckets "
        "same day, 1 day, 2-7 days, over 7 days, and the median (lower median) in days.",
        APPOINTMENTS,
        metrics.lead_time,
        APPOINTMENT_STRATIFIERS,
        days=True,
    ),
    Definition(
        "third-next-available",
        "Days to third next available appointment",
        "Weekly, per Schedule and service: calendar days from the week's Monday to the local "
        "day of the third free Slot starting on or after that Monday's local midnight (the "
        "measuring instant), counting the Slots as they stood at that instant and looking "
        "366 days ahead (the standard access measure). A Slot's service is the "
        "HealthcareService its Schedule names. The weeks of a period are those whose Monday "
        "falls in it, up to today; a Schedule's score is the mean of its weeks' values, "
        "always stratified by week.",
        SLOTS,
        None,
        ("service", "period-week"),
        always=("period-week",),
        days=True,
    ),
    Definition(
        "slot-utilisation",
        "Slot utilisation",
        "Booked (busy) Slot minutes / bookable (free, busy, busy-tentative) Slot minutes, by "
        "Slot start date in the period; open-ahead: free Slot minutes from the later of today "
        "and the period start to the period end.",
        SLOTS,
        metrics.slot_utilisation,
        SLOT_STRATIFIERS,
    ),
    Definition(
        "booking-channel",
        "Booking channel mix",
        "Appointments by start date in the period by the channel recorded when booked: portal, "
        "clinic (the clinic workspace), app (a SMART app or the API), ehr (an EHR's backend "
        "service).",
        APPOINTMENTS,
        metrics.booking_channel,
        APPOINTMENT_STRATIFIERS,
    ),
    Definition(
        "reminder-effect",
        "Reminder effect (observational)",
        "No-show rate, as defined for no-show-rate, of appointments whose reminder was "
        "delivered to the patient vs of those without one. Observational: reminded and "
        "not-reminded appointments differ in other ways too (e.g. booked late).",
        APPOINTMENTS,
        metrics.reminder_effect,
        APPOINTMENT_STRATIFIERS,
    ),
    Definition(
        "patient-demographics",
        "Demographics of booked patients",
        "Distinct patients with an appointment booked (whatever became of it) by start date in "
        "the period, each counted once (group booked-patients), and those appointments (group "
        "appointments), stratified by the patient's age band on the appointment's day (0-17, "
        "18-29, 30-44, 45-64, 65-74, 75+), gender and postal district (the postal code's part "
        "before the space, else its first 3 characters). A patient counts once in each stratum "
        "of one of their appointments (a birthday in the period can put them in two bands).",
        PATIENTS,
        metrics.demographics,
        APPOINTMENT_STRATIFIERS,
        always=metrics.DEMOGRAPHICS,
    ),
)
BY_ID: Final = {d.id: d for d in DEFINITIONS}


def measures() -> list[dict[str, Any]]:
    return [d.measure() for d in DEFINITIONS]


def definition(measure_id: str) -> Definition:
    found = BY_ID.get(measure_id)
    if found is None:
        raise NotFound(f"Measure/{measure_id} is not known.")
    return found


@dataclass(frozen=True)
class Request:
    """An evaluation asked for: the measure, the period (dates, inclusive), the subject
    (`Type/id`), the stratifiers."""

    measure: str
    start: date
    end: date
    subject: str | None = None
    stratifiers: tuple[str, ...] = ()


def checked(request: Request) -> tuple[Definition, Query, tuple[str, ...]]:
    """The definition, the query and the stratifiers of a request; 404/400 when wrong."""
    found = definition(request.measure)
    if request.end < request.start:
        raise BadRequest("periodEnd must not be before periodStart.")
    if (request.end - request.start).days >= MAX_PERIOD_DAYS:
        raise BadRequest(f"A report covers at most {MAX_PERIOD_DAYS} days.")
    subject = None
    if request.subject:
        rtype, _, rid = request.subject.partition("/")
        if rtype not in SUBJECT_KINDS or not rid or "/" in rid:
            raise BadRequest(
                "subject must be Location/[id], Practitioner/[id] or HealthcareService/[id]."
            )
        subject = (SUBJECT_KINDS[rtype], request.subject)
    wrong = [s for s in request.stratifiers if s not in found.stratifiers]
    if wrong:
        allowed = ", ".join(found.stratifiers) or "none"
        raise BadRequest(
            f"Stratifier {wrong[0]!r:.40} is not one of {found.measure()['id']}'s: {allowed}."
        )
    stratifiers = tuple(dict.fromkeys((*found.always, *request.stratifiers)))
    return found, Query(found.source, request.start, request.end, subject), stratifiers


async def evaluate(
    reports: ReportStore, request: Request, *, late_hours: int, today: date
) -> dict[str, Any]:
    """The summary MeasureReport of a request, suppressed."""
    found, query, stratifiers = checked(request)
    if found.metric is None:
        groups = await _third_next_available(reports, query, stratifiers, today)
    else:
        groups = await _groups(reports, found, query, stratifiers, late_hours, today)
    report = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": f"{BASE}/Measure/{found.id}",
        "date": to_instant(datetime.now(UTC)),
        "period": {"start": request.start.isoformat(), "end": request.end.isoformat()},
    }
    # No group at all (third next available before any week was measured): none in R4.
    return report | {"group": groups} if groups else report


async def _groups(
    reports: ReportStore,
    found: Definition,
    query: Query,
    stratifiers: tuple[str, ...],
    late_hours: int,
    today: date,
) -> list[dict[str, Any]]:
    assert found.metric is not None
    metric = found.metric
    total = (await metrics.summed(reports, query, None)).get(ALL, Counter())
    figures = metric(total, late_hours)
    if found.id == "slot-utilisation":
        since = max(today, query.start)
        ahead = 0
        if since <= query.end:
            ahead = await metrics.open_minutes(
                reports, Query(SLOTS, since, query.end, query.subject)
            )
        figures["open-ahead"] = Figures({"initial-population": ahead})
    below_clinic = query.subject is not None
    shown = {code: suppression.shown(f, round_it=below_clinic) for code, f in figures.items()}
    split: dict[str, list[dict[str, Any]]] = {code: [] for code in figures}
    for name in stratifiers:
        if name in metrics.PERIOD_STRATIFIERS:
            strata = await metrics.by_period(reports, query, name)
        else:
            strata = await metrics.summed(reports, query, name)
        values = sorted(strata)
        names = await _displays(reports, values)
        per_value = {v: metric(strata[v], late_hours) for v in values}
        for code in figures:
            if code == "open-ahead":
                continue
            cells = [per_value[v][code] for v in values]
            views = [suppression.shown(f, round_it=True) for f in cells]
            views = suppression.hide_scores(suppression.complementary(shown[code], views), cells)
            split[code].append(
                {
                    "code": _stratifier_code(name),
                    "stratum": [
                        {"value": _value(v, names.get(v)), **_numbers(view, found.days)}
                        for v, view in zip(values, views, strict=True)
                    ],
                }
            )
    out = []
    for code, view in shown.items():
        group: dict[str, Any] = {"code": _group_code(code), **_numbers(view, found.days)}
        if split[code]:
            group["stratifier"] = split[code]
        out.append(group)
    return out


async def _third_next_available(
    reports: ReportStore, query: Query, stratifiers: tuple[str, ...], today: date
) -> list[dict[str, Any]]:
    """One group per Schedule (narrowed to the subject: a Practitioner or Location its actors
    name, or a service), scored by the mean of its weekly values, stratified by week and by
    service."""
    mondays = metrics.measured_mondays(query.start, query.end, today)
    weeks = await metrics.weekly_free(reports, mondays)
    rows = {key for week in weeks.values() for key in week}
    references = sorted({key.split("|", 1)[0] for key in rows})
    schedules = await reports.resources("Schedule", [r.partition("/")[2] for r in references])
    kind, subject = query.subject or ("", "")
    base = subject if kind == "service" else ALL
    services = sorted({key.split("|", 1)[1] for key in rows} - {ALL})
    names = await _displays(reports, services)
    out = []
    for reference in references:
        schedule = schedules.get(reference.partition("/")[2])
        if schedule is None or f"{reference}|{base}" not in rows:
            continue
        if kind in ("practitioner", "location") and subject not in _actors(schedule):
            continue
        values = metrics.weekly_values(weeks, f"{reference}|{base}")
        group: dict[str, Any] = {
            "code": {**_group_code("third-next-available"), "text": reference},
            **_numbers(Shown(score=metrics.mean(values)), True),
        }
        split = []
        for name in stratifiers:
            if name == "period-week":
                strata = [(m.isoformat(), v) for m, v in zip(mondays, values, strict=True)]
            else:
                offered = [v for v in services if f"{reference}|{v}" in rows and base in (ALL, v)]
                strata = [
                    (v, metrics.mean(metrics.weekly_values(weeks, f"{reference}|{v}")))
                    for v in offered
                ]
            split.append(
                {
                    "code": _stratifier_code(name),
                    "stratum": [
                        {"value": _value(v, names.get(v)), **_numbers(Shown(score=days), True)}
                        for v, days in strata
                    ],
                }
            )
        if split:
            group["stratifier"] = split
        out.append(group)
    return out


def _stratifier_code(name: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": STRATIFIER_SYSTEM, "code": name}], "text": name}]


def _actors(schedule: dict[str, Any]) -> list[str]:
    return [str(a.get("reference")) for a in schedule.get("actor") or []]


def _group_code(code: str) -> dict[str, Any]:
    return {"coding": [{"system": GROUP_SYSTEM, "code": code}]}


def _value(value: str, display: str | None) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": value}
    if display:
        concept["coding"] = [{"display": display}]
    return concept


def _numbers(view: Shown, days: bool) -> dict[str, Any]:
    """The population[] and measureScore (or the suppressed extension) of a group or stratum."""
    out: dict[str, Any] = {}
    populations = []
    for count in view.counts:
        population: dict[str, Any] = {
            "code": {"coding": [{"system": POPULATION_SYSTEM, "code": count.code}]}
        }
        if count.hidden:
            population["extension"] = [_SUPPRESSED]
        else:
            population["count"] = count.value
            if count.rounded:
                population["extension"] = [{"url": ROUNDED_URL, "valueBoolean": True}]
        populations.append(population)
    if populations:
        out["population"] = populations
    if view.score is not None:
        out["measureScore"] = {"value": view.score, **(_DAYS_UNIT if days else {})}
    elif view.score_hidden:
        out["extension"] = [_SUPPRESSED]
    return out


_DISPLAYED: Final = ("Practitioner", "PractitionerRole", "Location", "HealthcareService")


async def _displays(reports: ReportStore, values: list[str]) -> dict[str, str]:
    """Names of the resources among stratum values."""
    out: dict[str, str] = {}
    for rtype in _DISPLAYED:
        ids = [v.partition("/")[2] for v in values if v.startswith(f"{rtype}/")]
        if not ids:
            continue
        for rid, resource in (await reports.resources(rtype, ids)).items():
            name = display_name(resource)
            if name:
                out[f"{rtype}/{rid}"] = name
    return out


def display_name(resource: dict[str, Any]) -> str | None:
    if isinstance(resource.get("name"), str):
        return str(resource["name"])
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return None
