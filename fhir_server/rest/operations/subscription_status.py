"""`Subscription/[id]/$status`: the Backport IG's status of a topic-based Subscription.

Answers a searchset Bundle holding the status Parameters (type
`query-status`): the Subscription's status and how many events it has had,
so a receiver that sees a gap in event numbers can tell how many it missed.
"""

from __future__ import annotations

from fhir_server.fhir.errors import BadRequest, Unprocessable
from fhir_server.notifications.notification_bundle import status_bundle
from fhir_server.notifications.topics import is_topic_based
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, param
from fhir_server.rest.services import Operation, Services
from fhir_server.store.subscription_events import events_since_start

DEFINITION = definition(
    "status",
    "Subscription",
    "The status of a topic-based Subscription (Subscriptions R5 Backport IG): a searchset "
    "Bundle with one Parameters resource of type query-status giving its status and the "
    "number of events since it started.",
    [param("return", "out", "Bundle", min_=1, doc="Searchset with the status Parameters.")],
    type_level=False,
    instance=True,
)


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method not in ("GET", "POST"):
        raise BadRequest("$status is invoked with GET or POST.")
    subscription = (await services.store.read("Subscription", req.path[1])).resource or {}
    if not is_topic_based(subscription):
        raise Unprocessable("$status reports on topic-based Subscriptions only.")
    events = await events_since_start(services.store, req.path[1])
    return FhirResponse(200, status_bundle(services.settings.base_url, subscription, events))


OPERATION = Operation(DEFINITION, handle)
