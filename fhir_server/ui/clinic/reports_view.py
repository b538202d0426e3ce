"""One report as the page shows it: a figure with its chart, its data table and its CSV.

The chart, the table and the CSV are drawn from one `Grid`, itself from one
MeasureReport, so the three always carry the same numbers (and the same "<11").
Pure: the page hands in its translation function and its language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from babel.numbers import format_decimal

from fhir_server.ui.charts import Series, bar_chart, data_url
from fhir_server.ui.clinic.reports_model import (
    BREAKDOWNS,
    N_,
    Metric,
    column_name,
    stratum_name,
)
from fhir_server.ui.measure_tables import (
    TOTAL,
    ReportTable,
    chart_columns,
    chart_value,
    csv_text,
    plain_value,
    shown_value,
)

Translate = Callable[[str], str]

WITHHELD_NOTE = N_(
    "<11 means a number from 1 to 10, withheld to protect privacy, as is any number it "
    "could be worked out from."
)


@dataclass(frozen=True)
class Value:
    shown: str  # as the page shows it, in the reader's language ("12.5%", "<11")
    plain: str  # as the CSV holds it ("12.5", "<11")
    number: float | None  # what the chart draws


@dataclass(frozen=True)
class Grid:
    """The data table: `corner` heads the row headers, `headers` the value columns."""

    corner: str
    headers: list[str]
    rows: list[tuple[str, list[Value]]]

    def csv(self) -> str:
        return csv_text(
            [[self.corner, *self.headers]]
            + [[name, *(v.plain for v in values)] for name, values in self.rows]
        )


@dataclass(frozen=True)
class Figure:
    """A chart and the table of its numbers, under one caption."""

    id: str
    by: str  # the breakdown its rows are, "" for the totals
    caption: str
    chart: str  # a data: URL of the SVG, "" when the report has no numbers at all
    alt: str
    grid: Grid
    notes: list[str]


def grid(metric: Metric, table: ReportTable, _: Translate, locale: str) -> Grid:
    """Without a breakdown, one row per number (a long list reads better than a wide row);
    with one, a row per stratum (the whole period first) and a column per number."""
    names = [": ".join(_(part) for part in column_name(metric, table, c)) for c in table.columns]

    def values(index: int) -> list[Value]:
        cells = zip(table.columns, table.rows[index].cells, strict=True)
        return [
            Value(shown_value(c, cell, locale), plain_value(c, cell), chart_value(c, cell))
            for c, cell in cells
        ]

    if not table.stratifier:
        return Grid(
            _("Number"),
            [_("Whole period")],
            [(n, [v]) for n, v in zip(names, values(0), strict=True)],
        )
    rows = [
        (
            _("All") if row.key == TOTAL else _(stratum_name(table.stratifier, row, locale)),
            values(i),
        )
        for i, row in enumerate(table.rows)
    ]
    return Grid(_(BREAKDOWNS[table.stratifier]), names, rows)


def chart(table: ReportTable, data: Grid, locale: str) -> str:
    """The chart of a grid: the numbers `chart_columns` picks, a bar each per stratum when
    the report is broken down (the whole period's row is left to the table), else a bar
    each for the whole period."""
    picked = chart_columns(table)
    if table.stratifier and len(data.rows) > 1:
        strata = data.rows[1:]
        categories = [name for name, _values in strata]
        series = [
            Series(
                data.headers[i],
                [values[i].number for _, values in strata],
                [values[i].shown for _, values in strata],
            )
            for i in picked
        ]
    else:
        if table.stratifier:  # a breakdown without strata: the numbers are the columns
            pairs = [(data.headers[i], data.rows[0][1][i]) for i in picked]
        else:
            pairs = [(data.rows[i][0], data.rows[i][1][0]) for i in picked]
        categories = [name for name, _value in pairs]
        series = [Series("", [v.number for _, v in pairs], [v.shown for _, v in pairs])]
    return data_url(bar_chart(categories, series, lambda v: str(format_decimal(v, locale=locale))))


def figure(metric: Metric, table: ReportTable, caption: str, _: Translate, locale: str) -> Figure:
    data = grid(metric, table, _, locale)
    notes = []
    if table.suppressed:
        notes.append(_(WITHHELD_NOTE))
    if table.rounded:
        notes.append(_("Counts in a breakdown are rounded to the nearest 5."))
    alt = _("Bar chart of the numbers in the table that follows.")
    by = table.stratifier or ""
    name = f"{metric.id}-{by}" if by else metric.id
    drawn = chart(table, data, locale) if data.rows and data.headers else ""
    return Figure(name, by, caption, drawn, alt, data, notes)
