"""`Practitioner/[id]/$calendar-feed` and `Patient/[id]/$calendar-feed`: a private feed URL.

POST issues a new unguessable URL of the owner's iCalendar feed (any earlier
URL stops working: that is how a leaked URL is revoked) and answers it, https
and webcal://; POST with `revoke=true` closes the feed and answers no URL.
Only the owner gets it: the token's fhirUser (or its patient) must be the
resource the operation is invoked on. The gate decides first, as for any
change to that record (`calendar-feed` is a changing operation of the role
table), so another patient's or practitioner's id answers 404 or 403 before
this runs. Operators use `fhir-server calendar-feed issue|revoke` instead.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.policy import TokenContext
from fhir_server.fhir.errors import BadRequest, Forbidden, NotFound
from fhir_server.publishing.links import feed_urls
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import CANONICAL, definition, first, inputs, param
from fhir_server.rest.services import Operation, Services
from fhir_server.store.calendar_feeds import CalendarFeeds

CODE = "calendar-feed"
OWNER_TYPES = ("Patient", "Practitioner")

DEFINITION = {
    **definition(
        CODE,
        "Practitioner",
        "A private iCalendar (RFC 5545) feed of the owner's appointments for calendar apps: "
        "POST answers a new feed URL (https and webcal) and revokes any earlier one; "
        "revoke=true closes the feed. Only for the owner's own token.",
        [
            param("revoke", "in", "boolean", doc="Close the feed instead of issuing a URL."),
            param("url", "out", "url", doc="The feed (https); keep it private."),
            param("webcal", "out", "uri", doc="The same feed as a webcal:// link."),
        ],
        type_level=False,
        instance=True,
        affects_state=True,
    ),
    "id": CODE,
    "url": f"{CANONICAL}/OperationDefinition/{CODE}",
    "resource": list(OWNER_TYPES),
}


def _check_owner(req: FhirRequest, owner: str) -> None:
    token = req.auth
    if not isinstance(token, TokenContext):
        return  # auth is off (local development): no owner to compare
    rtype, _, rid = owner.partition("/")
    if token.fhir_user != owner and not (rtype == "Patient" and token.patient == rid):
        raise Forbidden("Only the owner of a calendar feed can get or revoke its URL.")


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method != "POST":
        raise BadRequest(f"${CODE} is invoked with POST (it issues a new URL).")
    owner = f"{req.path[0]}/{req.path[1]}"
    _check_owner(req, owner)
    current = await services.store.current(req.path[0], req.path[1])
    if current is None or current.deleted:
        raise NotFound(f"{owner} is not known.")
    feeds = CalendarFeeds(services.store.database)
    parameters: list[dict[str, Any]] = []
    if str(first(inputs(req), "revoke")).lower() == "true":
        await feeds.revoke(owner)
    else:
        url, webcal = feed_urls(services.settings, await feeds.issue(owner))
        parameters = [{"name": "url", "valueUrl": url}, {"name": "webcal", "valueUri": webcal}]
    body: dict[str, Any] = {"resourceType": "Parameters"}
    if parameters:
        body["parameter"] = parameters
    return FhirResponse(200, body, {"Cache-Control": "no-store"})


OPERATION = Operation(DEFINITION, handle)
