"""Beat job: move `requested` Subscriptions to `active`, or to `error` when unusable.

R4 leaves activation to the server. A Subscription becomes active when its
criteria can be evaluated and its channel is a rest-hook with an http(s)
endpoint; otherwise it goes to `error` with the reason in `error`. (A first
successful delivery also activates a requested Subscription.)

Creating or updating a Subscription over the API refuses (422) a rest-hook
endpoint the server must not call (see `channels.outbound.endpoint_problem`),
and for a topic-based one (see `topics`) an unknown topic, filter or payload
content, which activation would otherwise turn into `error` later. It refuses
(403) a token that may not read the type the Subscription follows, and
stores the Subscription stamped with its owner (`owners`), whose read limits
every later notification passes.
"""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import FhirError, Forbidden, Unprocessable
from fhir_server.notifications import owners, topics
from fhir_server.notifications.channels.outbound import Reach, endpoint_problem
from fhir_server.notifications.criteria import CriteriaError, compile_criteria
from fhir_server.notifications.delivery import Context
from fhir_server.notifications.topics import is_topic_based
from fhir_server.store.resources import Version


def problem(subscription: dict[str, Any], base_url: str) -> str | None:
    channel = subscription.get("channel", {})
    if channel.get("type") != "rest-hook":
        return "Only the rest-hook channel is supported."
    if not str(channel.get("endpoint", "")).startswith(("http://", "https://")):
        return "A rest-hook Subscription needs an http(s) endpoint."
    if is_topic_based(subscription):
        return topics.problem(subscription, base_url)
    try:
        compile_criteria(str(subscription.get("criteria", "")), base_url)
    except CriteriaError as exc:
        return str(exc)
    return None


async def check_write(ctx: Any) -> tuple[Version, bool]:
    """The REST write hook of Subscription: refuse an unknown topic or filter, an unsafe
    endpoint or a type the token may not read; else write it, stamped with its owner.

    Typed loosely (`rest.services.WriteContext`): notifications do not import the
    REST layer that calls it.
    """
    body, settings, request = ctx.body, ctx.services.settings, ctx.request
    if is_topic_based(body):
        refused_topic = topics.problem(body, settings.base_url)
        if refused_topic:
            raise Unprocessable(refused_topic, expression=("Subscription.criteria",))
    followed = _followed_type(body)
    if followed and not owners.may_read_type(getattr(request.auth, "limits", None), followed):
        raise Forbidden(f"The token may not read {followed}, so it cannot subscribe to it.")
    channel = body.get("channel", {})
    if channel.get("type") == "rest-hook":
        refused = await endpoint_problem(str(channel.get("endpoint", "")), Reach.of(settings))
        if refused:
            raise Unprocessable(refused, expression=("Subscription.channel.endpoint",))
    owned = owners.stamped(body, request.auth)
    if request.method == "POST" or "id" not in owned:
        return await ctx.store.create(owned, rid=request.assigned_id, uow=ctx.uow), True
    version, created = await ctx.store.update(
        owned, expected_version=ctx.expected_version, uow=ctx.uow
    )
    return version, created


def _followed_type(subscription: dict[str, Any]) -> str | None:
    """The resource type a Subscription is told about (None: a topic this server lacks)."""
    if is_topic_based(subscription):
        try:
            return topics.topic_of(subscription).resource_type
        except topics.TopicError:
            return None
    return str(subscription.get("criteria", "")).partition("?")[0] or None


async def activate(ctx: Context) -> dict[str, str]:
    """Settle every requested Subscription; {id: new status}."""
    settled: dict[str, str] = {}
    for subscription in await ctx.outbox.live_subscriptions(None):
        if subscription.get("status") != "requested":
            continue
        reason = problem(subscription, ctx.settings.base_url)
        updated = {**subscription, "status": "error" if reason else "active"}
        if reason:
            updated["error"] = reason
        try:
            await ctx.store.update(updated, expected_version=int(subscription["meta"]["versionId"]))
        except FhirError:
            continue
        settled[subscription["id"]] = updated["status"]
    return settled
