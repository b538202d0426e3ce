"""The availability editor's form, both ways: FHIR `availableTime`/`notAvailable` to form
rows, and the POSTed form back to FHIR, with every mistake tied to its field (pure).

Weekly hours are edited per weekday as start/end pairs (`mon-1-start`, `mon-1-end`,
...); a day's "copy these times to" checkboxes (`copy-mon` = `tue`, ...) give other
days the same pairs when the form is saved, so copying works without JavaScript.
Time off (and a Location's closed days) is a list of periods: the stored ones can be
removed (`remove` = their index), one new one can be added (`off-*`). Times are the
clinic's wall-clock time in the Location's zone, as the scheduling engine reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.ui.portal.booking_model import WEEKDAYS
from fhir_server.ui.web import FieldError

Resource = dict[str, Any]
Pair = tuple[str, str]

DAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = dict(zip(DAY_CODES, WEEKDAYS, strict=True))
MAX_PAIRS = 12
"""Pairs a day may hold (far more than a working day has; bounds the form's size)."""
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")


@dataclass
class Day:
    """One weekday's rows on the form: its pairs as typed (strings, maybe blank)."""

    code: str
    name: str
    pairs: list[Pair]
    copy_to: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[int, Pair]]:
        """The pairs numbered from 1, and one blank row more (at least two) to add to."""
        shown = [*self.pairs, ("", "")]
        while len(shown) < 2:
            shown.append(("", ""))
        return list(enumerate(shown[:MAX_PAIRS], start=1))


@dataclass(frozen=True)
class Period:
    """A stored period of time off or closure, shown in the clinic's zone."""

    index: int
    description: str
    start: datetime | date | None
    end: datetime | date | None


@dataclass
class NewPeriod:
    """The "add time off" fields as typed."""

    description: str = ""
    start_date: str = ""
    start_time: str = ""
    end_date: str = ""
    end_time: str = ""
    all_day: bool = True


# -- FHIR to form ---------------------------------------------------------------


def _hhmm(value: Any) -> str:
    return str(value or "00:00")[:5]


def week_of_rules(rules: list[Resource]) -> list[Day]:
    """Each weekday's pairs from `availableTime` (a rule without days is every day; an
    all-day rule is 00:00-23:59, the widest the form's time inputs hold)."""
    days = {code: Day(code, DAY_NAMES[code], []) for code in DAY_CODES}
    for rule in rules:
        pair = (
            ("00:00", "23:59")
            if rule.get("allDay")
            else (_hhmm(rule.get("availableStartTime")), _hhmm(rule.get("availableEndTime")))
        )
        for code in rule.get("daysOfWeek") or DAY_CODES:
            if code in days and pair not in days[code].pairs:
                days[code].pairs.append(pair)
    for day in days.values():
        day.pairs.sort()
    return list(days.values())


def _moment(value: Any, zone: ZoneInfo) -> datetime | date | None:
    text = str(value or "")
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(zone) if moment.tzinfo else moment


def periods_of(durings: list[tuple[str, Resource]], zone: ZoneInfo) -> list[Period]:
    """(description, Period) pairs as shown: dates as dates, times in the clinic's zone."""
    return [
        Period(n, text, _moment(during.get("start"), zone), _moment(during.get("end"), zone))
        for n, (text, during) in enumerate(durings)
    ]


# -- form to FHIR ---------------------------------------------------------------


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _clock(value: str) -> time | None:
    return time.fromisoformat(value) if _CLOCK.match(value) else None


def days_of_form(form: Any) -> list[Day]:
    """The weekdays' pairs as typed (blank rows dropped) and their copy choices."""
    days = []
    for code in DAY_CODES:
        pairs = [
            (_text(form, f"{code}-{n}-start"), _text(form, f"{code}-{n}-end"))
            for n in range(1, MAX_PAIRS + 1)
        ]
        kept = [pair for pair in pairs if pair != ("", "")]
        copies = [c for c in form.getlist(f"copy-{code}") if c in DAY_CODES and c != code]
        days.append(Day(code, DAY_NAMES[code], kept, copies))
    return days


def check_week(days: list[Day], _: Any) -> list[FieldError]:
    """Some hours at all, each pair complete, real times, end after start, no overlap
    within a day.

    `_` translates (the page's gettext); field ids are the inputs' ids (`mon-2-end`).
    """
    if not any(day.pairs for day in days):
        # A PractitionerRole without hours does not restrict its Schedules at all.
        message = _("Give the hours of at least one day; to take no appointments, add time off")
        return [FieldError(message, f"{DAY_CODES[0]}-1-start")]
    errors: list[FieldError] = []
    for day in days:
        name = _(day.name)
        spans: list[tuple[time, time, int]] = []
        for n, (start, end) in enumerate(day.pairs, start=1):
            opens, closes = _clock(start), _clock(end)
            if opens is None:
                message = _("Enter a start time for %(day)s, like 09:00") % {"day": name}
                errors.append(FieldError(message, f"{day.code}-{n}-start"))
            if closes is None:
                message = _("Enter an end time for %(day)s, like 17:30") % {"day": name}
                errors.append(FieldError(message, f"{day.code}-{n}-end"))
            if opens is None or closes is None:
                continue
            if closes <= opens:
                message = _("The end time must be after the start time on %(day)s") % {"day": name}
                errors.append(FieldError(message, f"{day.code}-{n}-end"))
                continue
            spans.append((opens, closes, n))
        spans.sort()
        latest = time.min  # the latest end of the pairs starting earlier
        for opens, closes, n in spans:
            if opens < latest:
                message = _("Times on %(day)s overlap: %(start)s starts before %(end)s") % {
                    "day": name,
                    "start": opens.strftime("%H:%M"),
                    "end": latest.strftime("%H:%M"),
                }
                errors.append(FieldError(message, f"{day.code}-{n}-start"))
            latest = max(latest, closes)
    return errors


def copied(days: list[Day]) -> list[Day]:
    """The week with each day's copy choices applied (from the pairs as typed, so copying
    Monday to Tuesday and Tuesday to Monday swaps them)."""
    typed = {day.code: list(day.pairs) for day in days}
    result = {day.code: Day(day.code, day.name, list(day.pairs)) for day in days}
    for day in days:
        for target in day.copy_to:
            result[target].pairs = list(typed[day.code])
    return list(result.values())


def rules_of_week(days: list[Day]) -> list[Resource]:
    """`availableTime`: one rule per distinct pair, naming every day that has it."""
    by_pair: dict[Pair, list[str]] = {}
    for day in days:
        for start, end in day.pairs:
            by_pair.setdefault((start[:5], end[:5]), []).append(day.code)
    return [
        {
            "daysOfWeek": codes,
            "availableStartTime": f"{start}:00",
            "availableEndTime": f"{end}:00",
        }
        for (start, end), codes in sorted(by_pair.items())
    ]


def new_period_of_form(form: Any) -> NewPeriod:
    return NewPeriod(
        description=_text(form, "off-description"),
        start_date=_text(form, "off-start"),
        start_time=_text(form, "off-start-time"),
        end_date=_text(form, "off-end"),
        end_time=_text(form, "off-end-time"),
        all_day=form.get("off-all-day") == "yes",
    )


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if re.match(r"^\d{4}-\d{2}-\d{2}$", value) else None
    except ValueError:
        return None


def check_period(
    new: NewPeriod, zone: ZoneInfo, _: Any, *, times: bool = True
) -> tuple[Resource | None, list[FieldError]]:
    """The new period as a FHIR Period (None when the fields are blank) and its errors.

    Dates are whole local days, inclusive; with `times` (time off) and not all day, the
    start and end times are read in `zone` and written with their UTC offset.
    """
    all_day = new.all_day or not times
    typed = [new.start_date, new.end_date, new.description]
    if times and not all_day:
        typed += [new.start_time, new.end_time]
    if not any(typed):
        return None, []
    errors: list[FieldError] = []
    first = _day(new.start_date)
    last = _day(new.end_date) if new.end_date else first
    if first is None:
        errors.append(FieldError(_("Enter the first day as a real date"), "off-start"))
    if last is None and new.end_date:
        errors.append(FieldError(_("Enter the last day as a real date"), "off-end"))
    if all_day:
        if first and last and last < first:
            errors.append(FieldError(_("The last day must not be before the first"), "off-end"))
        if errors or first is None or last is None:
            return None, errors
        return {"start": first.isoformat(), "end": last.isoformat()}, []
    opens, closes = _clock(new.start_time), _clock(new.end_time)
    if opens is None:
        message = _("Enter a start time like 09:00, or choose unavailable all day")
        errors.append(FieldError(message, "off-start-time"))
    if closes is None:
        message = _("Enter an end time like 17:30, or choose unavailable all day")
        errors.append(FieldError(message, "off-end-time"))
    if errors or first is None or last is None or opens is None or closes is None:
        return None, errors
    start = datetime.combine(first, opens, zone)
    end = datetime.combine(last, closes, zone)
    if end <= start:
        return None, [FieldError(_("The end must be after the start"), "off-end-time")]
    return {"start": start.isoformat(), "end": end.isoformat()}, []


def removed(form: Any, count: int) -> set[int]:
    """The indexes of the stored periods ticked for removal."""
    picked = {value for value in form.getlist("remove") if isinstance(value, str)}
    return {n for n in range(count) if str(n) in picked}


def horizon(now: datetime, days: int) -> tuple[str, str]:
    """The window slots are regenerated for, as `$generate-slots` takes it."""
    return now.isoformat(), (now + timedelta(days=days)).isoformat()
