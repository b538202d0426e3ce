"""The report pages' pure pieces: a MeasureReport as a table (suppressed cells "<11"), as
CSV, and as an inert SVG chart (no script, labels on every bar); the filters of a page
and the names of its columns and rows."""

from __future__ import annotations

import base64
import csv
import io
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_python

from fhir_server.ui import i18n
from fhir_server.ui import measure_tables as mt
from fhir_server.ui.charts import Series, bar_chart, data_url
from fhir_server.ui.clinic import reports_model as model
from fhir_server.ui.clinic import reports_view as view

UI = Path(__file__).resolve().parents[2] / "fhir_server" / "ui"
BASE = "http://testserver/fhir"
GROUP_SYSTEM = f"{BASE}/CodeSystem/report-group"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
WITHHELD = {"url": f"{BASE}/StructureDefinition/report-suppressed", "valueString": "<11"}
ROUNDED = {"url": f"{BASE}/StructureDefinition/report-rounded", "valueBoolean": True}


def _population(code: str, count: int | None, rounded: bool = False) -> dict[str, Any]:
    population: dict[str, Any] = {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}}
    if count is None:
        population["extension"] = [WITHHELD]
    else:
        population["count"] = count
        if rounded:
            population["extension"] = [ROUNDED]
    return population


def _stratifier(name: str, strata: list[dict[str, Any]]) -> dict[str, Any]:
    return {"code": [{"coding": [{"code": name}], "text": name}], "stratum": strata}


def _volume_group(outcome: str, total: int | None, weeks: list[int | None]) -> dict[str, Any]:
    starts = ["2026-11-02", "2026-11-09"]
    return {
        "code": {"coding": [{"system": GROUP_SYSTEM, "code": outcome}]},
        "population": [_population("initial-population", total)],
        "stratifier": [
            _stratifier(
                "period-week",
                [
                    {
                        "value": {"text": start},
                        "population": [_population("initial-population", n, rounded=True)],
                    }
                    for start, n in zip(starts, weeks, strict=True)
                ],
            )
        ],
    }


VOLUME = {
    "resourceType": "MeasureReport",
    "status": "complete",
    "type": "summary",
    "measure": f"{BASE}/Measure/appointment-volume",
    "period": {"start": "2026-11-01", "end": "2026-11-14"},
    "group": [
        _volume_group("booked", 60, [25, 35]),
        _volume_group("attended", 40, [20, 20]),
        _volume_group("cancelled", None, [None, None]),
        _volume_group("missed", 12, [None, None]),
    ],
}

NO_SHOW = {
    "resourceType": "MeasureReport",
    "measure": f"{BASE}/Measure/no-show-rate",
    "period": {"start": "2026-11-01", "end": "2026-11-30"},
    "group": [
        {
            "code": {"coding": [{"system": GROUP_SYSTEM, "code": "all"}]},
            "population": [_population("denominator", 200), _population("numerator", 15)],
            "measureScore": {"value": 0.075},
            "stratifier": [
                _stratifier(
                    "practitioner",
                    [
                        {
                            "value": {
                                "text": "Practitioner/a",
                                "coding": [{"display": "Dr Ada Lovelace"}],
                            },
                            "population": [
                                _population("denominator", 120),
                                _population("numerator", 15),
                            ],
                            "measureScore": {"value": 0.125},
                        },
                        {
                            "value": {"text": "Practitioner/b"},
                            "extension": [WITHHELD],
                            "population": [
                                _population("denominator", 80),
                                _population("numerator", None),
                            ],
                        },
                    ],
                )
            ],
        }
    ],
}


def _texts(table: mt.ReportTable, locale: str = "en") -> list[list[str]]:
    return [
        [
            row.label,
            *(
                mt.shown_value(c, cell, locale)
                for c, cell in zip(table.columns, row.cells, strict=True)
            ),
        ]
        for row in table.rows
    ]


def test_groups_become_columns_and_withheld_counts_read_less_than_eleven() -> None:
    table = mt.report_table(VOLUME)
    assert table.measure == "appointment-volume"
    assert table.period == ("2026-11-01", "2026-11-14")
    assert [c.group for c in table.columns] == ["booked", "attended", "cancelled", "missed"]
    assert {c.population for c in table.columns} == {"initial-population"}
    assert _texts(table) == [["", "60", "40", "<11", "12"]]
    assert table.suppressed and not table.rounded


def test_a_stratifier_adds_a_row_per_stratum_after_the_total() -> None:
    table = mt.report_table(VOLUME, "period-week")
    assert [row.key for row in table.rows] == [mt.TOTAL, "2026-11-02", "2026-11-09"]
    assert _texts(table)[1:] == [
        ["2026-11-02", "25", "20", "<11", "<11"],
        ["2026-11-09", "35", "20", "<11", "<11"],
    ]
    assert table.rounded  # the strata carry the server's rounding mark
    # A stratifier the report does not have leaves the total alone.
    assert len(mt.report_table(VOLUME, "gender").rows) == 1


def test_rates_are_percentages_and_a_withheld_rate_reads_less_than_eleven() -> None:
    table = mt.report_table(NO_SHOW, "practitioner")
    assert [c.population for c in table.columns] == ["denominator", "numerator", mt.SCORE]
    assert _texts(table) == [
        ["", "200", "15", "7.5%"],
        ["Dr Ada Lovelace", "120", "15", "12.5%"],
        ["Practitioner/b", "80", "<11", "<11"],
    ]
    assert _texts(table, "fr")[1][3] == "12,5\u00a0%"
    assert mt.chart_columns(table) == [2]
    assert mt.chart_value(table.columns[2], table.rows[1].cells[2]) == 12.5


def test_scores_in_days_keep_their_unit_and_counts_are_charted_when_split() -> None:
    lead_time = {
        "measure": f"{BASE}/Measure/lead-time",
        "group": [
            {
                "code": {"coding": [{"code": bucket}]},
                "population": [_population("initial-population", n)],
            }
            for bucket, n in (("same-day", 30), ("1-day", None), ("2-7-days", 50))
        ]
        + [{"code": {"coding": [{"code": "median"}]}, "measureScore": {"value": 3, "code": "d"}}],
    }
    table = mt.report_table(lead_time)
    assert table.columns[-1] == mt.Column("median", mt.SCORE, "d", "median")
    assert _texts(table) == [["", "30", "<11", "50", "3.0"]]
    assert mt.chart_columns(table) == [0, 1, 2]
    assert mt.plain_value(table.columns[-1], table.rows[0].cells[-1]) == "3.0"


def test_csv_keeps_less_than_eleven_and_neutralises_formulas() -> None:
    table = mt.report_table(NO_SHOW, "practitioner")
    plain = [
        mt.plain_value(c, cell) for c, cell in zip(table.columns, table.rows[2].cells, strict=True)
    ]
    assert plain == ["80", "<11", "<11"]
    assert mt.plain_value(table.columns[2], table.rows[1].cells[2]) == "12.5"
    text = mt.csv_text([["Practitioner", "Due"], ["=HYPERLINK(1)", "<11"], ["-2", "3"]])
    assert text == "Practitioner,Due\r\n'=HYPERLINK(1),<11\r\n'-2,3\r\n"
    assert list(csv.reader(io.StringIO(text)))[1] == ["'=HYPERLINK(1)", "<11"]


def _svg(url: str) -> ET.Element:
    assert url.startswith("data:image/svg+xml;base64,")
    return ET.fromstring(base64.b64decode(url.split(",", 1)[1]))


def test_the_chart_is_inert_svg_with_every_bar_labelled() -> None:
    svg = bar_chart(
        ["booked", "attended", "cancelled"],
        [Series("Count", [60, 40, None], ["60", "40", "<11"])],
        axis=lambda v: f"{v:.0f}",
    )
    tree = _svg(data_url(svg))
    tags = {element.tag.rsplit("}", 1)[-1] for element in tree.iter()}
    assert "script" not in tags and "foreignObject" not in tags
    assert not any(e.get("style") or any(a.startswith("on") for a in e.attrib) for e in tree.iter())
    texts = [e.text for e in tree.iter() if e.tag.endswith("text")]
    values = [e.text for e in tree.iter() if e.tag.endswith("text") and e.get("class") == "value"]
    assert sorted(values, key=str) == ["40", "60", "<11"]
    assert {"booked", "attended", "cancelled"} <= set(texts)


def test_several_series_name_each_bar() -> None:
    svg = bar_chart(
        ["2026-11-02"],
        [Series("booked", [25], ["25"]), Series("missed", [None], ["<11"])],
        axis=lambda v: f"{v:.0f}",
    )
    values = {
        e.text
        for e in ET.fromstring(svg).iter()
        if e.tag.endswith("text") and e.get("class") == "value"
    }
    assert values == {"booked: 25", "missed: <11"}


TODAY = date(2026, 12, 5)


def test_filters_default_to_the_last_twelve_weeks_and_name_what_is_wrong() -> None:
    volume = model.BY_ID["appointment-volume"]
    filters, errors = model.parse_filters({}, volume, TODAY)
    assert (filters.start, filters.end, errors) == (date(2026, 9, 13), TODAY, [])
    good = {"from": "2026-11-01", "to": "2026-11-30", "subject": "Practitioner/p-1", "by": "gender"}
    filters, errors = model.parse_filters(good, volume, TODAY)
    assert errors == [] and filters.query() == good
    assert filters.parameters() == [
        ("periodStart", "2026-11-01"),
        ("periodEnd", "2026-11-30"),
        ("subject", "Practitioner/p-1"),
        ("stratifier", "gender"),
    ]
    bad = {"from": "2026-13-01", "to": "2026-11-30", "subject": "Patient/x", "by": "colour"}
    filters, errors = model.parse_filters(bad, volume, TODAY)
    assert [e.field for e in errors] == ["from", "subject", "by"]
    assert (filters.start, filters.subject, filters.by) == (date(2026, 9, 13), "", "")
    backwards = {"from": "2026-11-30", "to": "2026-11-01"}
    filters, errors = model.parse_filters(backwards, volume, TODAY)
    assert [e.field for e in errors] == ["to"] and filters.end == TODAY
    # A breakdown the metric does not offer is refused too.
    third = model.BY_ID["third-next-available"]
    assert model.parse_filters({"by": "gender"}, third, TODAY)[1][0].field == "by"


def test_columns_are_named_by_group_population_or_both() -> None:
    volume = mt.report_table(VOLUME)
    metric = model.BY_ID["appointment-volume"]
    names = [model.column_name(metric, volume, c) for c in volume.columns]
    assert names == [["Booked"], ["Attended"], ["Cancelled"], ["Missed"]]
    no_show = mt.report_table(NO_SHOW)
    metric = model.BY_ID["no-show-rate"]
    names = [model.column_name(metric, no_show, c) for c in no_show.columns]
    assert names == [["Appointments due"], ["No-shows"], ["No-show rate"]]
    metric = model.BY_ID["late-cancellation-rate"]
    two = mt.report_table(
        {
            "group": [
                {**g, "code": {"coding": [{"code": code}]}}
                for code, g in (("patient", NO_SHOW["group"][0]), ("clinic", NO_SHOW["group"][0]))
            ]
        }
    )
    names = [model.column_name(metric, two, c) for c in two.columns]
    assert names[0] == ["By the patient", "Appointments due"] and names[-1] == [
        "By the clinic",
        "Rate",
    ]


def test_strata_are_named_in_the_reader_language() -> None:
    week = mt.Row("2026-11-02", "2026-11-02", ())
    assert model.stratum_name("period-week", week, "en") == "2 Nov 2026"
    month = mt.Row("2026-11", "2026-11", ())
    assert model.stratum_name("period-month", month, "fr") == "novembre 2026"
    assert model.stratum_name("gender", mt.Row("female", "female", ()), "fr") == "Female"
    who = mt.Row("Practitioner/a", "Dr Ada Lovelace", ())
    assert model.stratum_name("practitioner", who, "en") == "Dr Ada Lovelace"


def test_every_word_of_the_report_pages_has_french() -> None:
    """`N_` marks words the page translates later (the base rule extracts `_` only)."""
    found = {
        message
        for path in sorted((UI / "clinic").glob("reports*.py"))
        for _line, _func, message, _comments in extract_python(
            path.open("rb"), keywords={"N_": None, "_": None}, comment_tags=(), options={}
        )
    }
    assert "Appointment volume" in found and "Choose a breakdown from the list" in found
    french = i18n.translations("fr")
    assert sorted(m for m in found if isinstance(m, str) and french.gettext(m) == m) == []


def _fr(message: str) -> str:
    return i18n.translations("fr").gettext(message)


def test_a_figure_shows_the_same_numbers_in_its_table_chart_and_csv() -> None:
    metric = model.BY_ID["appointment-volume"]
    shown = view.figure(metric, mt.report_table(VOLUME, "period-week"), "Volume", _fr, "fr")
    assert (shown.id, shown.by) == ("appointment-volume-period-week", "period-week")
    assert shown.grid.corner == "Semaine"
    assert shown.grid.headers == ["Réservé", "Honoré", "Annulé", "Manqué"]
    table = [[name, *(v.shown for v in values)] for name, values in shown.grid.rows]
    assert table == [
        ["Tous", "60", "40", "<11", "12"],
        ["2 nov. 2026", "25", "20", "<11", "<11"],
        ["9 nov. 2026", "35", "20", "<11", "<11"],
    ]
    rows = list(csv.reader(io.StringIO(shown.grid.csv())))
    assert rows[0] == ["Semaine", "Réservé", "Honoré", "Annulé", "Manqué"] and rows[1:] == table
    svg = ET.fromstring(base64.b64decode(shown.chart.split(",", 1)[1]))
    labels = {e.text for e in svg.iter() if e.tag.endswith("text") and e.get("class") == "value"}
    assert labels == {"Réservé: 25", "Réservé: 35", "Honoré: 20", "Annulé: <11", "Manqué: <11"}
    assert len(shown.notes) == 2  # withheld and rounded numbers are explained


def test_without_a_breakdown_the_table_lists_one_number_a_row() -> None:
    metric = model.BY_ID["no-show-rate"]
    shown = view.figure(metric, mt.report_table(NO_SHOW), "No-shows", lambda m: m, "en")
    assert shown.grid.headers == ["Whole period"]
    assert [(n, v[0].shown) for n, v in shown.grid.rows] == [
        ("Appointments due", "200"),
        ("No-shows", "15"),
        ("No-show rate", "7.5%"),
    ]
    svg = ET.fromstring(base64.b64decode(shown.chart.split(",", 1)[1]))
    values = [e.text for e in svg.iter() if e.tag.endswith("text") and e.get("class") == "value"]
    assert values == ["7.5%"]
    assert shown.notes == []  # nothing withheld, nothing rounded


def test_a_rate_with_nothing_due_keeps_its_column_and_an_empty_report_draws_nothing() -> None:
    nothing_due = {
        "group": [
            {
                "code": {"coding": [{"code": "utilisation"}]},
                "population": [_population("denominator", 0), _population("numerator", 0)],
            },
            {
                "code": {"coding": [{"code": "open-ahead"}]},
                "population": [_population("initial-population", 600)],
            },
        ]
    }
    table = mt.report_table(nothing_due)
    assert _texts(table) == [["", "0", "0", "\u2013", "600"]]
    metric = model.BY_ID["slot-utilisation"]
    names = [model.column_name(metric, table, c) for c in table.columns]
    assert names == [
        ["Minutes bookable"],
        ["Minutes booked"],
        ["Utilisation"],
        ["Open minutes ahead"],
    ]
    third = model.BY_ID["third-next-available"]
    shown = view.figure(third, mt.report_table({"group": []}), "Third", lambda m: m, "en")
    assert shown.chart == "" and shown.grid.rows == []
