"""The report pages (`/clinic/reports/`): a dashboard, a page per metric, its CSV.

The front desk and admins only (`ReportReader`, as in the API's role table):
anyone else gets the 403 page before any call, and the API refuses
`$evaluate-measure` to other tokens anyway. Every number comes from
`Measure/{id}/$evaluate-measure` with the user's own token: the page never
counts anything itself, so the server's suppression ("<11", rounding) is all
there is to see. The filters are a plain GET form (works without JavaScript;
the address is bookmarkable and is the CSV's too).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from babel.dates import format_date
from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from fhir_server.ui.clinic.reports_model import (
    BREAKDOWNS,
    BY_ID,
    METRICS,
    SUBJECT_TYPES,
    FilterError,
    Filters,
    Metric,
    parse_filters,
    schedule_name,
)
from fhir_server.ui.clinic.reports_view import Figure, figure
from fhir_server.ui.clinic.roles import ReportReader
from fhir_server.ui.fhir_api import PortalApiError, entries
from fhir_server.ui.measure_tables import renamed, report_table
from fhir_server.ui.portal.booking_model import name_of
from fhir_server.ui.web import FieldError, SignedInPage

router = APIRouter()

SUBJECT_LIMIT = "200"  # subjects offered per type (a clinic's directory, not a registry)


def _today() -> date:
    return datetime.now(UTC).date()


async def _subjects(page: SignedInPage) -> list[tuple[str, list[tuple[str, str]]]]:
    """The subjects to filter by, per type: (type's name, [(reference, name)])."""
    names = {
        "Location": page._("Locations"),
        "Practitioner": page._("Clinicians"),
        "HealthcareService": page._("Services"),
    }
    bundles = await asyncio.gather(
        *(page.api.search(kind, {"_count": SUBJECT_LIMIT}) for kind in SUBJECT_TYPES)
    )
    found = []
    for kind, bundle in zip(SUBJECT_TYPES, bundles, strict=True):
        options = sorted(
            (
                (f"{kind}/{r['id']}", name_of(r) or f"{kind}/{r['id']}")
                for r in entries(bundle, kind)
            ),
            key=lambda option: option[1].casefold(),
        )
        found.append((names[kind], options))
    return found


async def _figures(page: SignedInPage, metric: Metric, filters: Filters) -> list[Figure]:
    """The metric's figures from one `$evaluate-measure` call: the chosen breakdown's, else
    one per breakdown every report of the metric carries, else the totals'."""
    report = await page.api.request(
        "GET", f"Measure/{metric.id}/$evaluate-measure", params=filters.parameters()
    )
    names = await _schedule_names(page, report)
    shown = [filters.by] if filters.by else list(metric.always) or [""]
    return [
        figure(
            metric,
            renamed(report_table(report, by or None), names),
            _caption(page, metric, filters, by),
            page._,
            page.lang,
        )
        for by in shown
    ]


async def _schedule_names(page: SignedInPage, report: dict[str, Any]) -> dict[str, str]:
    """Names of the Schedules a report's groups are (third next available has a group per
    Schedule, `code.text` its reference): their actors' names, in one search."""
    ids = [
        str(text).removeprefix("Schedule/")
        for group in report.get("group", [])
        if str(text := (group.get("code") or {}).get("text", "")).startswith("Schedule/")
    ]
    if not ids:
        return {}
    bundle = await page.api.search("Schedule", {"_id": ",".join(ids), "_count": str(len(ids))})
    return {
        f"Schedule/{schedule['id']}": schedule_name(schedule)
        for schedule in entries(bundle, "Schedule")
    }


def _caption(page: SignedInPage, metric: Metric, filters: Filters, by: str) -> str:
    def day(value: date) -> str:
        return str(format_date(value, "d MMMM y", locale=page.lang))

    caption = page._("%(metric)s, %(start)s to %(end)s") % {
        "metric": page._(metric.title),
        "start": day(filters.start),
        "end": day(filters.end),
    }
    if by:
        caption += page._(", by %(breakdown)s") % {"breakdown": page._(BREAKDOWNS[by]).lower()}
    return caption


def _errors(page: SignedInPage, found: list[FilterError]) -> list[FieldError]:
    return [FieldError(page._(e.message), e.field) for e in found]


def _subject_name(subjects: list[tuple[str, list[tuple[str, str]]]], reference: str) -> str:
    return next((name for _, options in subjects for ref, name in options if ref == reference), "")


@router.get("/reports/")
async def dashboard(page: ReportReader) -> Response:
    """Every metric's totals over the period: a figure each, one call each, at once."""
    filters, problems = parse_filters(page.request.query_params, None, _today())
    subjects, figures = await asyncio.gather(
        _subjects(page), asyncio.gather(*(_available(page, m, filters) for m in METRICS))
    )
    return page.render(
        "clinic/reports.html",
        title=page._("Reports"),
        status=400 if problems else 200,
        errors=_errors(page, problems),
        filters=filters,
        subjects=subjects,
        subject_name=_subject_name(subjects, filters.subject),
        metrics=list(zip(METRICS, figures, strict=True)),
        breakdowns=[],
    )


async def _available(page: SignedInPage, metric: Metric, filters: Filters) -> Figure | str:
    """A metric's figure, or why the server could not produce it (the dashboard shows the
    other metrics all the same; a refusal of the user's token is the 403 page)."""
    try:
        return (await _figures(page, metric, filters))[0]
    except PortalApiError as error:
        if error.status in (401, 403):
            raise
        return " ".join(error.messages) or page._("This report is not available now.")


def _metric(metric_id: str) -> Metric:
    metric = BY_ID.get(metric_id)
    if metric is None:
        raise HTTPException(404)
    return metric


@router.get("/reports/{metric_id}.csv")
async def metric_csv(page: ReportReader, metric_id: str) -> Response:
    """The metric's data table as CSV (UTF-8 with a byte order mark, which spreadsheets
    need to read accents), with the same filters as its page."""
    metric = _metric(metric_id)
    filters, problems = parse_filters(page.request.query_params, metric, _today())
    if problems:
        return await metric_page(page, metric_id)
    shown = (await _figures(page, metric, filters))[0]
    name = f"{shown.id}-{filters.start.isoformat()}-{filters.end.isoformat()}.csv"
    return Response(
        "\ufeff" + shown.grid.csv(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Portal-Fhir-Calls": str(page.api.calls),
        },
    )


def _csv_url(page: SignedInPage, metric: Metric, filters: Filters, shown: Figure) -> str:
    """The CSV of one figure: the page's filters, with the figure's breakdown."""
    query = filters.query() | ({"by": shown.by} if shown.by else {})
    return page.url(f"/reports/{metric.id}.csv", **query)


@router.get("/reports/{metric_id}")
async def metric_page(page: ReportReader, metric_id: str) -> Response:
    metric = _metric(metric_id)
    filters, problems = parse_filters(page.request.query_params, metric, _today())
    errors = _errors(page, problems)
    subjects = await _subjects(page)
    try:
        shown = await _figures(page, metric, filters)
    except PortalApiError as error:
        if error.status != 400:
            raise
        shown = []  # the server refused the filters: say why, beside the form
        errors += [FieldError(message) for message in error.messages] or [
            FieldError(page._("These filters cannot be used together. Change them and try again."))
        ]
    return page.render(
        "clinic/reports_metric.html",
        title=page._(metric.title),
        status=400 if errors else 200,
        errors=errors,
        metric=metric,
        filters=filters,
        subjects=subjects,
        subject_name=_subject_name(subjects, filters.subject),
        breakdowns=[(by, page._(BREAKDOWNS[by])) for by in metric.breakdowns],
        figures=[(f, _csv_url(page, metric, filters, f)) for f in shown],
    )
