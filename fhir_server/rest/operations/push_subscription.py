"""`Patient/[id]/$push-subscription`: where the portal registers a browser for web push.

GET answers the VAPID public key (`applicationServerKey`) the browser
subscribes with; POST stores the browser's PushSubscription (`endpoint`,
`p256dh`, `auth`) for that patient. Push is then used when the patient's
notification preferences name the `push` channel.
"""

from __future__ import annotations

from fhir_server.fhir.errors import BadRequest
from fhir_server.notifications import push_registry
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, first, inputs, param
from fhir_server.rest.services import Operation, Services

DEFINITION = definition(
    "push-subscription",
    "Patient",
    "Register a browser for web push notifications of this patient's appointments "
    "(POST endpoint, p256dh, auth from the browser's PushSubscription), or read the "
    "server's VAPID applicationServerKey (GET).",
    [
        param("endpoint", "in", "url", doc="PushSubscription.endpoint."),
        param("p256dh", "in", "string", doc="PushSubscription keys.p256dh (base64url)."),
        param("auth", "in", "string", doc="PushSubscription keys.auth (base64url)."),
        param("applicationServerKey", "out", "string", min_=1, doc="VAPID public key."),
    ],
    type_level=False,
    instance=True,
    affects_state=True,
)


def _parameters(services: Services) -> dict[str, object]:
    key = push_registry.public_key(services.settings)
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "applicationServerKey", "valueString": key}],
    }


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    owner = f"{req.path[0]}/{req.path[1]}"
    if req.method == "POST":
        given = inputs(req)
        info = {
            "endpoint": first(given, "endpoint"),
            "keys": {"p256dh": first(given, "p256dh"), "auth": first(given, "auth")},
        }
        await push_registry.register(services.store, services.settings, owner, info)
    elif req.method != "GET":
        raise BadRequest("$push-subscription is invoked with GET or POST.")
    return FhirResponse(200, _parameters(services))


OPERATION = Operation(DEFINITION, handle)
