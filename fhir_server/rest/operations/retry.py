"""`Communication/[id]/$retry`: send again a message that failed or waits (admins only).

The admin console's delivery problems: a notification that ended `not-done`
(its reason in `statusReason`) or that waits for a later attempt
(`preparation`) is made due now and published (`notifications.retry`). Only
an admin's token runs it (`auth.roles.ADMIN_OPERATIONS`). The answer is the
Communication as it now is.
"""

from __future__ import annotations

from fhir_server.fhir.errors import MethodNotAllowed
from fhir_server.notifications.retry import retry
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, param
from fhir_server.rest.services import Operation, Services

DEFINITION = definition(
    "retry",
    "Communication",
    "Send again a notification that failed (not-done) or waits for its next attempt "
    "(preparation): its attempts start again and it is sent now. A message being sent or "
    "sent is refused (409). Admins only.",
    [param("return", "out", "Communication", min_=1, doc="The message, due now.")],
    type_level=False,
    instance=True,
    affects_state=True,
)


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method != "POST":
        raise MethodNotAllowed("$retry changes data: invoke it with POST.")
    version = await retry(services.store, req.path[1])
    return FhirResponse(200, version.resource)


OPERATION = Operation(DEFINITION, handle)
