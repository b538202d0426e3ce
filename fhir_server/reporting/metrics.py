"""Each metric computed from the rollups (the definitions are in the README, "Reports").

A metric turns the summed counters of a group or stratum into `Figures`
(population counts and a score); `Query` says which counters to sum: the
tables of a period, narrowed to a subject, split by a stratifier. The months
wholly inside the period are read from month tables, the days at its edges
from day tables, so a two-year report reads about 24 + 60 small rows per
stratifier whatever the number of appointments.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from fhir_server.reporting.facts import MAX_LEAD_DAYS, NONE
from fhir_server.reporting.rollups import ALL, PATIENTS, TNA, Source, table_id
from fhir_server.reporting.suppression import Figures
from fhir_server.store.report_store import ReportStore

OUTCOMES: Final = {
    "booked": (),  # every appointment counted
    "attended": ("fulfilled", "arrived", "checked-in"),
    "cancelled": ("cancelled",),
    "missed": ("noshow",),
}
NO_SHOW_DUE: Final = ("fulfilled", "arrived", "noshow")
CHANNELS: Final = ("portal", "clinic", "app", "ehr")
LEAD_BUCKETS: Final = (
    ("same-day", 0, 0),
    ("1-day", 1, 1),
    ("2-7-days", 2, 7),
    ("over-7-days", 8, MAX_LEAD_DAYS),
)
BOOKABLE: Final = ("free", "busy", "busy-tentative")
PERIOD_STRATIFIERS: Final = ("period-day", "period-week", "period-month")
DEMOGRAPHICS: Final = ("age-band", "gender", "postal-district")
THIRD: Final = 3


@dataclass(frozen=True)
class Query:
    source: Source
    start: date
    end: date
    subject: tuple[str, str] | None = None  # (kind, Type/id)


def spans(start: date, end: date) -> list[tuple[str, str]]:
    """(grain, period) of the tables covering start..end: whole months as months, the rest
    as days."""
    out: list[tuple[str, str]] = []
    day = start
    while day <= end:
        month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        if day.day == 1 and month_end <= end:
            out.append(("m", day.strftime("%Y-%m")))
            day = month_end + timedelta(days=1)
        else:
            out.append(("d", day.isoformat()))
            day += timedelta(days=1)
    return out


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def period_label(day: date, unit: str) -> str:
    if unit == "period-week":
        return (day - timedelta(days=day.weekday())).isoformat()  # the week's Monday
    if unit == "period-month":
        return day.strftime("%Y-%m")
    return day.isoformat()


async def summed(
    reports: ReportStore, query: Query, stratifier: str | None
) -> dict[str, Counter[str]]:
    """The counters of the query's subject, by stratum (`*` without a stratifier)."""
    value = query.subject[1] if query.subject else ALL
    column = stratifier or "none"
    covering = spans(query.start, query.end)
    ids = [table_id(query.source, g, p, column) for g, p in covering]
    found = await reports.tables(ids)
    if query.source is PATIENTS:
        read = [
            (g, p, found.get(tid, (0, {}))[1]) for (g, p), tid in zip(covering, ids, strict=True)
        ]
        return patients_in(read, query.start, query.end, value)
    out: dict[str, Counter[str]] = {}
    prefix = f"{value}|"
    for _, rows in found.values():
        for key, counters in rows.items():
            if key.startswith(prefix):
                out.setdefault(key[len(prefix) :], Counter()).update(counters)
    return out


def patients_in(
    read: list[tuple[str, str, dict[str, dict[str, int]]]], start: date, end: date, value: str
) -> dict[str, Counter[str]]:
    """Distinct patients (`patients`) and their appointments (`booked`) of one subject by
    stratum, from the patient tables covering start..end (grain, period, rows).

    A patient counts at their first booking day in the period: the day whose previous
    booking day (in the same row) is before `start`, or none. The days of `start`'s month
    (when it is not the 1st) are day tables: their `pv:<date>` says so exactly. Every later
    day is in the month tables or the days at the end, which know only the month of the
    previous day (`pm:`): one before `later` (the 1st of the next month) is counted there,
    and the patients whose previous day was in fact in `start..later`, i.e. whose booking
    day there is followed (`nx:<date>`) by one in `later..end`, are taken away again."""
    month = start.isoformat()[:7]
    after = start
    if start.day != 1:
        after = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    first, last, later = start.isoformat(), end.isoformat(), after.isoformat()
    out: dict[str, Counter[str]] = {}
    prefix = f"{value}|"
    for grain, period, rows in read:
        leading = grain == "d" and start.day != 1 and period[:7] == month
        for key, counters in rows.items():
            if not key.startswith(prefix):
                continue
            found = out.setdefault(key[len(prefix) :], Counter())
            found["booked"] += counters.get("booked", 0)
            for name, amount in counters.items():
                kind, _, when = name.partition(":")
                if leading and kind == "pv" and (when == NONE or when < first):
                    found["patients"] += amount
                elif leading and kind == "nx" and when != NONE and later <= when <= last:
                    found["patients"] -= amount
                elif not leading and kind == "pm" and (when == NONE or when < later[:7]):
                    found["patients"] += amount
    return out


async def by_period(reports: ReportStore, query: Query, unit: str) -> dict[str, Counter[str]]:
    """The counters of the query's subject by day, week (its Monday) or month (read from the
    month tables where a month is wholly inside the period)."""
    if query.source is PATIENTS:
        return await _patients_by_period(reports, query, unit)
    value = query.subject[1] if query.subject else ALL
    days = _days(query.start, query.end)
    out: dict[str, Counter[str]] = {period_label(d, unit): Counter() for d in days}
    if unit == "period-month":
        labels = {
            table_id(query.source, grain, period, "none"): period[:7]
            for grain, period in spans(query.start, query.end)
        }
    else:
        labels = {
            table_id(query.source, "d", d.isoformat(), "none"): period_label(d, unit) for d in days
        }
    for tid, (_, rows) in (await reports.tables(list(labels))).items():
        out[labels[tid]].update(rows.get(f"{value}|{ALL}", {}))
    return out


async def _patients_by_period(
    reports: ReportStore, query: Query, unit: str
) -> dict[str, Counter[str]]:
    """Distinct patients by day, week or month: each part of the period counted as a period
    of its own (a patient of two weeks counts in each)."""
    value = query.subject[1] if query.subject else ALL
    parts: dict[str, tuple[date, date]] = {}
    for day in _days(query.start, query.end):
        label = period_label(day, unit)
        parts[label] = (parts.get(label, (day, day))[0], day)
    covering = {label: spans(*bounds) for label, bounds in parts.items()}
    ids = {table_id(PATIENTS, g, p, "none") for part in covering.values() for g, p in part}
    found = await reports.tables(sorted(ids))
    out: dict[str, Counter[str]] = {}
    for label, part in covering.items():
        read = [(g, p, found.get(table_id(PATIENTS, g, p, "none"), (0, {}))[1]) for g, p in part]
        out[label] = patients_in(read, *parts[label], value).get(ALL, Counter())
    return out


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _status(c: Counter[str], statuses: tuple[str, ...], prefix: str = "status") -> int:
    return sum(c[f"{prefix}:{s}"] for s in statuses)


def volume(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    return {
        code: Figures({"initial-population": c["booked"] if not statuses else _status(c, statuses)})
        for code, statuses in OUTCOMES.items()
    }


def _proportion(numerator: int, denominator: int) -> Figures:
    return Figures(
        {"denominator": denominator, "numerator": numerator},
        _rate(numerator, denominator),
        (numerator, denominator),
    )


def no_show_rate(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    return {"no-show": _proportion(c["status:noshow"], _status(c, NO_SHOW_DUE))}


def _late(c: Counter[str], side: str, late_hours: int) -> int:
    return sum(c[f"cancel:{side}:{h}"] for h in range(late_hours))


def late_cancellation_rate(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    patient, clinic = _late(c, "patient", late_hours), _late(c, "clinic", late_hours)
    due = c["booked"]
    return {
        "patient": _proportion(patient, due),
        "clinic": _proportion(clinic, due),
        "all": _proportion(patient + clinic, due),
    }


def lead_time(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    histogram = {d: c[f"lead:{d}"] for d in range(MAX_LEAD_DAYS + 1) if c[f"lead:{d}"]}
    out = {
        code: Figures(
            {"initial-population": sum(n for d, n in histogram.items() if low <= d <= high)}
        )
        for code, low, high in LEAD_BUCKETS
    }
    total = sum(histogram.values())
    median = None
    if total:
        median = float(
            statistics.median_low(d for d, n in sorted(histogram.items()) for _ in range(n))
        )
    out["median"] = Figures({}, median, (total,))
    return out


def booking_channel(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    return {ch: Figures({"initial-population": c[f"channel:{ch}"]}) for ch in CHANNELS}


def reminder_effect(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    reminded_due = _status(c, NO_SHOW_DUE, "reminded")
    reminded_noshow = c["reminded:noshow"]
    return {
        "reminded": _proportion(reminded_noshow, reminded_due),
        "not-reminded": _proportion(
            c["status:noshow"] - reminded_noshow, _status(c, NO_SHOW_DUE) - reminded_due
        ),
    }


def demographics(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    """Distinct patients (`patients_in`) and their appointments."""
    return {
        "booked-patients": Figures({"initial-population": c["patients"]}),
        "appointments": Figures({"initial-population": c["booked"]}),
    }


def slot_utilisation(c: Counter[str], late_hours: int) -> dict[str, Figures]:
    bookable = _status(c, BOOKABLE, "slot-min")
    return {"utilisation": _proportion(c["slot-min:busy"], bookable)}


Metric = Callable[[Counter[str], int], dict[str, Figures]]


def third_next_available(free_by_day: dict[str, int], monday: date) -> float | None:
    """Days from a week's Monday to the day holding the third free Slot, from the free Slots
    by local day as they stood at the week's measuring instant (None: fewer than three)."""
    seen = 0
    for day in sorted(free_by_day):
        seen += free_by_day[day]
        if seen >= THIRD:
            return float((date.fromisoformat(day) - monday).days)
    return None


def weekly_values(weeks: dict[date, dict[str, dict[str, int]]], row: str) -> list[float | None]:
    """A `Schedule|service` row's third next available, week by week."""
    return [third_next_available(free.get(row, {}), monday) for monday, free in weeks.items()]


def mean(values: list[float | None]) -> float | None:
    """The mean of the weeks that have a value, to a hundredth of a day."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 2) if known else None


def measured_mondays(start: date, end: date, today: date) -> list[date]:
    """The weeks a period holds for third next available: those whose Monday falls in it and
    has been measured (is not after today)."""
    monday = start + timedelta(days=(7 - start.weekday()) % 7)
    out = []
    while monday <= min(end, today):
        out.append(monday)
        monday += timedelta(weeks=1)
    return out


async def weekly_free(
    reports: ReportStore, mondays: list[date]
) -> dict[date, dict[str, dict[str, int]]]:
    """Each week's free Slots by `Schedule|service` row and local day, as measured."""
    ids = {f"{TNA}|w|{monday.isoformat()}": monday for monday in mondays}
    found = await reports.tables(list(ids))
    return {monday: found.get(tid, (0, {}))[1] for tid, monday in ids.items()}


async def open_minutes(reports: ReportStore, query: Query) -> int:
    """Free Slot minutes of the query's subject over its period."""
    totals = await summed(reports, query, None)
    return totals.get(ALL, Counter())["slot-min:free"]
