"""`Patient/$match` (FHIR R4): the stored Patients that may be the one given, scored.

The answer is a searchset Bundle, best first, each entry with `search.mode`
`match`, `search.score` (0..1) and the `match-grade` extension. Scoring and
candidate search are `fhir_server.matching`; this module reads the inputs and
shapes the Bundle. The access gate filters the entries like any search's.
"""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import BadRequest, Issue, PreconditionFailed, Unprocessable
from fhir_server.fhir.errors import operation_outcome as outcome
from fhir_server.fhir.validation import validate_resource
from fhir_server.matching.candidates import BLOCK_SIZE, Candidate, blocks, certain, ranked
from fhir_server.rest.bundles_common import bundle, full_url
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, first, inputs, param
from fhir_server.rest.services import Operation, Services

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
DEFINITION = {
    **definition(
        "match",
        "Patient",
        "FHIR R4 Patient $match: the stored Patients that may be the one given, as a "
        "searchset Bundle ordered by score, each entry with search.score and the match-grade "
        "extension (certain, probable, possible, certainly-not). With onlyCertainMatches "
        "only a certain match is returned, and none when several are certain.",
        [
            param("resource", "in", "Resource", min_=1, doc="The Patient to match."),
            param("onlyCertainMatches", "in", "boolean", doc="Only the one certain match."),
            param("count", "in", "integer", doc="Most matches to return."),
            param("return", "out", "Bundle", min_=1, doc="Searchset of scored Patients."),
        ],
    ),
    "url": "http://hl7.org/fhir/OperationDefinition/Patient-match",
}


def _patient(found: dict[str, list[Any]]) -> dict[str, Any]:
    patient = first(found, "resource", "Patient")
    if patient is None:
        raise BadRequest("$match needs a resource parameter holding a Patient.")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise BadRequest("$match takes a Patient resource.", expression=("resource",))
    try:
        validate_resource(patient)
    except Unprocessable as error:  # an input, not a resource to store: a bad request
        raise BadRequest(error.diagnostics, issues=error.issues) from None
    return patient


def _only_certain(found: dict[str, list[Any]]) -> bool:
    value = first(found, "onlyCertainMatches")
    if value is None or isinstance(value, bool):
        return bool(value)
    if value in ("true", "false"):  # from a query string
        return bool(value == "true")
    raise BadRequest("onlyCertainMatches must be a boolean.", expression=("onlyCertainMatches",))


def _count(found: dict[str, list[Any]], most: int) -> int:
    value = first(found, "count")
    if value is None:
        return most
    if isinstance(value, str) and value.isdigit():  # from a query string
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("count must be a positive integer.", expression=("count",))
    return min(value, most)


async def candidates(services: Services, req: FhirRequest, patient: Any) -> list[Candidate]:
    """The ranked matches among the Patients the blocks find within the caller's limits."""
    if not isinstance(patient, dict):
        return []
    found: list[dict[str, Any]] = []
    for query in blocks(patient):
        params = [*query, ("_count", str(BLOCK_SIZE))]
        answer = await services.searcher.search_bundle(
            "Patient", params, strict=True, limits=req.limits
        )
        found += [e["resource"] for e in answer.get("entry") or [] if "resource" in e]
    return ranked(patient, found)


def _entry(services: Services, candidate: Candidate) -> dict[str, Any]:
    rid = str(candidate.resource.get("id"))
    grade = {"url": MATCH_GRADE, "valueCode": candidate.assessment.grade}
    return {
        "fullUrl": full_url(services.base_url, "Patient", rid),
        "resource": candidate.resource,
        "search": {"extension": [grade], "mode": "match", "score": candidate.assessment.score},
    }


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method != "POST":
        raise BadRequest("$match is invoked with POST (a Parameters body).")
    found = inputs(req)
    patient = _patient(found)
    only_certain = _only_certain(found)
    count = _count(found, services.settings.max_page_size)
    matches = await candidates(services, req, patient)
    notes: list[dict[str, Any]] = []
    if only_certain:
        sure = certain(matches)
        matches = sure if len(sure) == 1 else []
        if len(sure) > 1:
            text = "Several Patients are certain matches; none is returned (onlyCertainMatches)."
            note = outcome([Issue("multiple-matches", text, severity="information")])
            notes.append({"resource": note, "search": {"mode": "outcome"}})
    entries = [_entry(services, c) for c in matches[:count]]
    return FhirResponse(200, bundle("searchset", entries + notes, total=len(entries)))


async def certain_duplicate(services: Services, req: FhirRequest) -> str | None:
    """For a conditional create of a Patient whose criteria found nothing: the id of the
    stored Patient that $match finds a certain match for, so no duplicate is made.

    Several certain matches refuse the create (412), as several matches of the
    criteria do: making one more would only add to the duplicates.
    """
    sure = certain(await candidates(services, req, req.body))
    if len(sure) > 1:
        raise PreconditionFailed("More than one Patient is a certain match for this one.")
    return str(sure[0].resource.get("id")) if sure else None


OPERATION = Operation(DEFINITION, handle)
