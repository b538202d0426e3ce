"""`Appointment/$outside-availability`: booked Appointments the rules no longer cover.

When hours shrink or a holiday or closure is added, slot generation flags the
affected Appointments (never cancelling them); staff list them here to call
the patients. One whose time the rules cover again (the hours grew back, the
closure was removed) is no longer listed.
"""

from __future__ import annotations

from fhir_server.fhir.appointment_status import ACTIVE
from fhir_server.rest.bundles_common import bundle, full_url
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, param
from fhir_server.rest.services import Operation, Services
from fhir_server.scheduling.extensions import OUTSIDE_AVAILABILITY
from fhir_server.scheduling.generation import still_outside
from fhir_server.store.slots import appointments_with_extension

DEFINITION = definition(
    "outside-availability",
    "Appointment",
    "Lists active Appointments flagged (extension "
    f"{OUTSIDE_AVAILABILITY}) because their time fell outside availability after a rule "
    "change and is still outside it, for staff to follow up.",
    [param("return", "out", "Bundle", min_=1, doc="Searchset of flagged Appointments.")],
)


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    flagged = await appointments_with_extension(services.store, OUTSIDE_AVAILABILITY, ACTIVE)
    flagged = await still_outside(services.store, flagged)
    entries = [
        {
            "fullUrl": full_url(services.base_url, "Appointment", a.id),
            "resource": a.resource,
            "search": {"mode": "match"},
        }
        for a in flagged
    ]
    return FhirResponse(200, bundle("searchset", entries, total=len(entries)))


OPERATION = Operation(DEFINITION, handle)
