"""`Measure/[id]/$evaluate-measure` (FHIR R4): a summary MeasureReport of one of the
clinic's metrics, from the report rollups, small numbers suppressed.

The rollups are first brought up to date with the history (`reporting.rollups.follow`),
then `reporting.measures.evaluate` answers. Who may run it is the access gate's
decision (staff and admins, and backend services by their scopes: `auth.roles`),
and the gate audits every run like any interaction.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.fhir.errors import BadRequest
from fhir_server.reporting import measures, rollups
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, first, inputs, param, strings
from fhir_server.rest.services import Operation, Services
from fhir_server.store.report_store import ReportStore

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_KNOWN = ("periodStart", "periodEnd", "subject", "stratifier", "reportType")
DEFINITION = {
    **definition(
        "evaluate-measure",
        "Measure",
        "FHIR R4 Measure $evaluate-measure for the clinic's metrics (see README, Reports): "
        "a summary MeasureReport over periodStart..periodEnd (dates, inclusive), optionally "
        "for one subject (Location, Practitioner or HealthcareService) and split by "
        "stratifiers (practitioner, service, location, appointment-type, age-band, gender, "
        "postal-district, period-day, period-week, period-month). Counts from 1 to 10 are "
        "suppressed, strata rounded to 5. Staff and admins only.",
        [
            param("periodStart", "in", "date", min_=1, doc="First day of the period."),
            param("periodEnd", "in", "date", min_=1, doc="Last day of the period."),
            param(
                "subject",
                "in",
                "string",
                doc="Location/[id], Practitioner/[id] or HealthcareService/[id].",
            ),
            param("stratifier", "in", "string", max_="*", doc="A stratifier name."),
            param("reportType", "in", "code", doc="summary (the only type served)."),
            param("return", "out", "MeasureReport", min_=1, doc="The summary MeasureReport."),
        ],
        type_level=False,
        instance=True,
    ),
    "url": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
}


def _day(found: dict[str, list[Any]], name: str) -> date:
    value = str(first(found, name) or "")
    try:
        if _DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise BadRequest(f"{name} is required: a date (YYYY-MM-DD).", expression=(name,))


def request_of(req: FhirRequest) -> measures.Request:
    """The evaluation a request asks for; 400 for a parameter that is missing or wrong."""
    found = inputs(req)
    unknown = [name for name in found if name not in _KNOWN]
    if unknown:
        raise BadRequest(f"Unknown parameter {unknown[0]!r:.40}; known: {', '.join(_KNOWN)}.")
    if first(found, "reportType") not in (None, "summary"):
        raise BadRequest("Only reportType summary is served.", expression=("reportType",))
    subjects = strings(found, "subject")
    if len(subjects) > 1:
        raise BadRequest("Give at most one subject.", expression=("subject",))
    return measures.Request(
        measure=req.path[1],
        start=_day(found, "periodStart"),
        end=_day(found, "periodEnd"),
        subject=subjects[0] if subjects else None,
        stratifiers=strings(found, "stratifier"),
    )


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    request = request_of(req)
    measures.checked(request)  # a bad request is refused before any work
    settings = services.settings
    zone = ZoneInfo(settings.report_timezone)
    await rollups.follow(services.store, zone)
    report = await measures.evaluate(
        ReportStore(services.store),
        request,
        late_hours=settings.report_late_cancel_hours,
        today=datetime.now(UTC).astimezone(zone).date(),
    )
    return FhirResponse(200, report)


OPERATION = Operation(DEFINITION, handle)
