"""Browser push subscriptions: the portal registers one per browser, per person.

The owner is the person's reference (`Patient/123`); a browser subscription
is the JSON the browser's PushManager gives (endpoint and keys p256dh, auth).
Registering the same endpoint again replaces it.
"""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import NotFound, Unprocessable
from fhir_server.notifications.channels.push import (
    REFUSED_ENDPOINT,
    application_server_key,
    check_subscription,
    endpoint_refused,
    subscription_key,
)
from fhir_server.settings import Settings
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore


async def register(
    store: ResourceStore, settings: Settings, owner: str, info: dict[str, Any]
) -> str:
    """Store a browser subscription for `owner`; its key. The endpoint is checked like a
    rest-hook's (422 when the server must not call it, in words that reveal no network
    detail)."""
    rtype, _, rid = owner.partition("/")
    found = await store.current(rtype, rid)
    if found is None or found.deleted:
        raise NotFound(f"{owner} is not known.")
    try:
        check_subscription(info)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    if await endpoint_refused(settings, info):
        raise Unprocessable(REFUSED_ENDPOINT, expression=("endpoint",))
    clean = {"endpoint": info["endpoint"], "keys": {k: info["keys"][k] for k in ("p256dh", "auth")}}
    key = subscription_key(clean)
    await OutboxStore(store).save_push_subscription(key, owner, clean)
    return key


def public_key(settings: Settings) -> str:
    """The VAPID application server key the browser subscribes with."""
    return application_server_key(settings)
