"""A MeasureReport as a table: what the report pages show, chart and download. Pure, no I/O.

The report pages read only `$evaluate-measure` answers (summary MeasureReports).
One report becomes one `ReportTable`: a column per (group, population) and a
column for the group's score when it has one (a proportion always does: a
period with nothing due shows its rate as absent rather than dropping it); a
row for the whole period (`TOTAL`) and, when the report is broken down by a
stratifier, a row per stratum. Suppression is the server's: a count or score it withheld (extension
`report-suppressed`) stays withheld here and reads "<11" in every output (page,
chart, CSV); nothing on this side can undo it, since the number never arrives.

It holds numbers and the report's own names only: the page names the columns
in the reader's language.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from babel import Locale
from babel.numbers import format_decimal, format_percent

Resource = dict[str, Any]

SUPPRESSED = "/StructureDefinition/report-suppressed"
ROUNDED = "/StructureDefinition/report-rounded"
SCORE = "measure-score"  # the column of a group's measureScore (not a population code)
TOTAL = ""  # the key of the whole-period row
SUPPRESSED_TEXT = "<11"


@dataclass(frozen=True)
class Column:
    """One number per row: a population of a group, or the group's score."""

    group: str  # the group's code (report-group system), "" for an uncoded group
    population: str  # a measure-population code, or SCORE
    unit: str = ""  # the score's unit as the report gives it (UCUM code: "%", "d", "1")
    label: str = ""  # what the report calls the group (its display or text), else its code


@dataclass(frozen=True)
class Cell:
    """One number of the table: `value` is None when the report withheld or lacks it."""

    value: float | None
    suppressed: bool = False  # withheld by the server: shown as "<11"
    rounded: bool = False  # a stratum count rounded to 5 by the server


EMPTY = Cell(None)


@dataclass(frozen=True)
class Row:
    key: str  # the stratum's value text (`Practitioner/x`, `2026-11-02`, `18-29`), TOTAL
    label: str  # what the report calls it (the reference's display when given)
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class ReportTable:
    measure: str  # the Measure's id
    period: tuple[str, str]  # start and end dates as the report gives them
    stratifier: str | None  # the stratifier the rows break down by, if any
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]  # the whole period first, then each stratum in report order

    @property
    def rounded(self) -> bool:
        return any(cell.rounded for row in self.rows for cell in row.cells)

    @property
    def suppressed(self) -> bool:
        return any(cell.suppressed for row in self.rows for cell in row.cells)


def _has_extension(element: Mapping[str, Any], suffix: str) -> bool:
    return any(str(e.get("url", "")).endswith(suffix) for e in element.get("extension", []))


def _code(concept: Mapping[str, Any] | None) -> str:
    if not concept:
        return ""
    codings = concept.get("coding") or [{}]
    return str(codings[0].get("code") or concept.get("text") or "")


def _population_cells(element: Mapping[str, Any]) -> dict[str, Cell]:
    """A group's or stratum's populations and score, by column population code."""
    cells = {}
    for population in element.get("population", []):
        code = _code(population.get("code"))
        count = population.get("count")
        cells[code] = Cell(
            None if count is None else float(count),
            suppressed=count is None and _has_extension(population, SUPPRESSED),
            rounded=_has_extension(population, ROUNDED),
        )
    score = element.get("measureScore")
    if score is not None and score.get("value") is not None:
        cells[SCORE] = Cell(float(score["value"]))
    elif _has_extension(element, SUPPRESSED):
        cells[SCORE] = Cell(None, suppressed=True)
    return cells


def _unit(group: Mapping[str, Any]) -> str:
    for element in [group, *(s for st in group.get("stratifier", []) for s in st["stratum"])]:
        score = element.get("measureScore") or {}
        if score.get("code") or score.get("unit"):
            return str(score.get("code") or score.get("unit"))
    return ""


def _label(concept: Mapping[str, Any] | None) -> str:
    if not concept:
        return ""
    codings = concept.get("coding") or [{}]
    return str(codings[0].get("display") or concept.get("text") or _code(concept))


def _strata(group: Mapping[str, Any], stratifier: str) -> list[Mapping[str, Any]]:
    for entry in group.get("stratifier", []):
        if any(_code(code) == stratifier for code in entry.get("code", [])):
            return list(entry.get("stratum", []))
    return []


def _stratum_key(stratum: Mapping[str, Any]) -> tuple[str, str]:
    value = stratum.get("value") or {}
    text = str(value.get("text") or _code(value))
    codings = value.get("coding") or [{}]
    return text, str(codings[0].get("display") or text)


def report_table(report: Resource, stratifier: str | None = None) -> ReportTable:
    """The table of a summary MeasureReport, broken down by `stratifier` when given."""
    groups = report.get("group", [])
    columns: list[Column] = []
    group_cells: list[dict[str, Cell]] = []
    for group in groups:
        cells = _population_cells(group)
        strata = [_population_cells(s) for s in _strata(group, stratifier or "")]
        codes = list(cells) + [c for s in strata for c in s if c not in cells]
        if "denominator" in codes or not codes:
            # A proportion, or a bare score (a median, a Schedule's days), has a score column
            # even when the report has none to give (nothing to divide by, no third slot).
            codes.append(SCORE)
        code = _group_key(group)
        for population in dict.fromkeys(sorted(codes, key=lambda c: c == SCORE)):
            unit = _unit(group) if population == SCORE else ""
            columns.append(Column(code, population, unit, _label(group.get("code"))))
        group_cells.append(cells)
    total = Row(TOTAL, "", tuple(_cell(group_cells, groups, c) for c in columns))
    rows = [total]
    if stratifier:
        rows += _stratum_rows(groups, columns, stratifier)
    measure = str(report.get("measure", "")).rstrip("/").rsplit("/", 1)[-1]
    period = report.get("period", {})
    return ReportTable(
        measure=measure.split("|")[0],
        period=(str(period.get("start", "")), str(period.get("end", ""))),
        stratifier=stratifier,
        columns=tuple(columns),
        rows=tuple(rows),
    )


def _group_key(group: Mapping[str, Any]) -> str:
    """What tells a group apart: its code, or its text where groups share one code (the
    third-next-available groups are one per Schedule, the reference in `code.text`)."""
    concept = group.get("code") or {}
    return str(concept.get("text") or _code(concept))


def renamed(table: ReportTable, names: Mapping[str, str]) -> ReportTable:
    """The table with groups named as `names` says (by what the report calls them): the
    pages name a Schedule's group after its clinician rather than `Schedule/x`."""
    columns = tuple(replace(c, label=names.get(c.label, c.label)) for c in table.columns)
    return replace(table, columns=columns)


def _cell(by_group: list[dict[str, Cell]], groups: list[Resource], column: Column) -> Cell:
    for group, cells in zip(groups, by_group, strict=True):
        if _group_key(group) == column.group:
            return cells.get(column.population, EMPTY)
    return EMPTY


def _stratum_rows(groups: list[Resource], columns: list[Column], stratifier: str) -> list[Row]:
    """One row per stratum value, in the order the report first names each."""
    labels: dict[str, str] = {}
    found: dict[tuple[str, str], dict[str, Cell]] = {}
    for group in groups:
        code = _group_key(group)
        for stratum in _strata(group, stratifier):
            key, label = _stratum_key(stratum)
            labels.setdefault(key, label)
            found[(code, key)] = _population_cells(stratum)
    return [
        Row(
            key,
            label,
            tuple(found.get((c.group, key), {}).get(c.population, EMPTY) for c in columns),
        )
        for key, label in labels.items()
    ]


# -- numbers as people read them ---------------------------------------------------------


def is_percent(column: Column) -> bool:
    """A score without a unit (or "1") is a proportion, shown as a percentage."""
    return column.population == SCORE and column.unit in ("", "1", "%")


def plain_value(column: Column, cell: Cell) -> str:
    """The number for a CSV file: "<11" when withheld, "" when absent, else plain digits
    (a dot for decimals, percentages as such: a spreadsheet reads them all)."""
    if cell.suppressed:
        return SUPPRESSED_TEXT
    if cell.value is None:
        return ""
    value = cell.value * 100 if is_percent(column) and column.unit != "%" else cell.value
    return f"{value:.1f}" if column.population == SCORE else f"{value:.0f}"


def shown_value(column: Column, cell: Cell, locale: str) -> str:
    """The number on the page in the reader's language: "<11" when withheld, a dash when
    the report has none; rates as percentages, other scores with one decimal."""
    if cell.suppressed:
        return SUPPRESSED_TEXT
    if cell.value is None:
        return "\u2013"  # en dash
    if is_percent(column):
        proportion = cell.value / 100 if column.unit == "%" else cell.value
        pattern = Locale.parse(locale).percent_formats[None].pattern.replace("0", "0.0", 1)
        return str(format_percent(proportion, pattern, locale=locale))
    if column.population == SCORE:
        return str(format_decimal(cell.value, "#,##0.0", locale=locale))
    return str(format_decimal(cell.value, "#,##0", locale=locale))


def chart_value(column: Column, cell: Cell) -> float | None:
    """The number a chart draws (percentages for rates), None for a withheld one."""
    if cell.value is None:
        return None
    return cell.value * 100 if is_percent(column) and column.unit != "%" else cell.value


def chart_columns(table: ReportTable) -> list[int]:
    """Which columns the chart draws: the groups' counts when the report splits one count
    into several groups (volume, lead-time buckets, channels), else the scores, else
    every count."""
    counts = [i for i, c in enumerate(table.columns) if c.population == "initial-population"]
    scores = [i for i, c in enumerate(table.columns) if c.population == SCORE]
    if len(counts) > 1:
        return counts
    return scores or list(range(len(table.columns)))


# -- CSV ---------------------------------------------------------------------------------


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows as CSV (RFC 4180). Text a spreadsheet would run as a formula gets a leading
    apostrophe (CSV injection); "<11" and plain numbers are left as they are."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([_inert(text) for text in row] for row in rows)
    return out.getvalue()


def _inert(text: str) -> str:
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
