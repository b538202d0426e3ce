"""The availability editor's form, both ways (pure): FHIR rules to weekday rows, the typed
rows back to `availableTime`, copying between days, and each mistake tied to its field."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from starlette.datastructures import FormData

from fhir_server.ui.clinic import availability_form as forms


def _(message: str) -> str:
    return message


def test_rules_become_rows_and_rows_become_one_rule_per_pair() -> None:
    rules = [
        {
            "daysOfWeek": ["mon", "tue"],
            "availableStartTime": "09:00:00",
            "availableEndTime": "12:00:00",
        },
        {"daysOfWeek": ["mon"], "availableStartTime": "13:00:00", "availableEndTime": "17:00:00"},
        {"allDay": True, "daysOfWeek": ["sat"]},
    ]
    week = forms.week_of_rules(rules)
    by_code = {day.code: day.pairs for day in week}
    assert by_code["mon"] == [("09:00", "12:00"), ("13:00", "17:00")]
    assert by_code["tue"] == [("09:00", "12:00")]
    assert by_code["sat"] == [("00:00", "23:59")]
    assert by_code["sun"] == []
    assert [n for n, _pair in week[0].rows()] == [1, 2, 3]  # one empty row more
    assert forms.rules_of_week(week)[:2] == [
        {"daysOfWeek": ["sat"], "availableStartTime": "00:00:00", "availableEndTime": "23:59:00"},
        {
            "daysOfWeek": ["mon", "tue"],
            "availableStartTime": "09:00:00",
            "availableEndTime": "12:00:00",
        },
    ]


def test_copying_uses_the_times_as_typed_so_two_days_can_swap() -> None:
    form = FormData(
        [
            ("mon-1-start", "09:00"),
            ("mon-1-end", "12:00"),
            ("tue-1-start", "14:00"),
            ("tue-1-end", "18:00"),
            ("copy-mon", "tue"),
            ("copy-mon", "sat"),
            ("copy-mon", "mon"),  # a day onto itself is ignored
            ("copy-tue", "mon"),
        ]
    )
    week = {day.code: day.pairs for day in forms.copied(forms.days_of_form(form))}
    assert week["mon"] == [("14:00", "18:00")]
    assert week["tue"] == [("09:00", "12:00")]
    assert week["sat"] == [("09:00", "12:00")]


def test_each_mistake_names_its_field() -> None:
    form = FormData(
        [
            ("mon-1-start", "09:00"),
            ("mon-1-end", "17:00"),
            ("mon-2-start", "10:00"),  # inside 09:00-17:00
            ("mon-2-end", "11:00"),
            ("mon-3-start", "12:00"),  # overlaps the first pair, not the one before it
            ("mon-3-end", "13:00"),
            ("tue-1-start", "25:00"),
            ("tue-1-end", ""),
            ("wed-1-start", "12:00"),
            ("wed-1-end", "12:00"),
        ]
    )
    errors = forms.check_week(forms.days_of_form(form), _)
    assert [e.field for e in errors] == [
        "mon-2-start",
        "mon-3-start",
        "tue-1-start",
        "tue-1-end",
        "wed-1-end",
    ]


def test_time_off_all_day_or_between_two_local_times() -> None:
    zone = ZoneInfo("America/New_York")
    whole, errors = forms.check_period(forms.NewPeriod(start_date="2026-07-01"), zone, _)
    assert whole == {"start": "2026-07-01", "end": "2026-07-01"} and not errors
    timed = forms.NewPeriod(
        start_date="2026-07-01", start_time="13:00", end_time="17:00", all_day=False
    )
    period, errors = forms.check_period(timed, zone, _)
    assert period == {"start": "2026-07-01T13:00:00-04:00", "end": "2026-07-01T17:00:00-04:00"}
    assert forms.check_period(forms.NewPeriod(), zone, _) == (None, [])
    backwards = forms.NewPeriod(start_date="2026-07-03", end_date="2026-07-01")
    assert [e.field for e in forms.check_period(backwards, zone, _)[1]] == ["off-end"]
    untimed = forms.NewPeriod(start_date="2026-07-01", all_day=False)
    assert [e.field for e in forms.check_period(untimed, zone, _)[1]] == [
        "off-start-time",
        "off-end-time",
    ]
    bad = forms.NewPeriod(start_date="2026-02-30", end_date="soon")
    assert [e.field for e in forms.check_period(bad, zone, _)[1]] == ["off-start", "off-end"]
    closed = forms.NewPeriod(start_date="2026-07-01", start_time="13:00", all_day=False)
    assert forms.check_period(closed, zone, _, times=False)[0] == {
        "start": "2026-07-01",
        "end": "2026-07-01",
    }


def test_a_week_without_any_hours_is_refused() -> None:
    """Without `availableTime` a PractitionerRole would not restrict its Schedules at all."""
    errors = forms.check_week(forms.days_of_form(FormData([("copy-mon", "tue")])), _)
    assert [e.field for e in errors] == ["mon-1-start"]
