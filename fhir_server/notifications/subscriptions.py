"""Beat job: move `requested` Subscriptions to `active`, or to `error` when unusable.

R4 leaves activation to the server. A Subscription becomes active when its
criteria can be evaluated and its channel is a rest-hook with an http(s)
endpoint; otherwise it goes to `error` with the reason in `error`. (A first
successful delivery also activates a requested Subscription.)

Creating or updating a Subscription over the API refuses (422) a rest-hook
endpoint the server must not call (see `channels.outbound.endpoint_problem`),
and for a topic-based one (see `topics`) an unknown topic, filter or payload
content, which activation would otherwise turn into `error` later.
"""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import FhirError, Unprocessable
from fhir_server.notifications import topics
from fhir_server.notifications.channels.outbound import Reach, endpoint_problem
from fhir_server.notifications.criteria import CriteriaError, compile_criteria
from fhir_server.notifications.delivery import Context
from fhir_server.notifications.topics import is_topic_based


def problem(subscription: dict[str, Any]) -> str | None:
    channel = subscription.get("channel", {})
    if channel.get("type") != "rest-hook":
        return "Only the rest-hook channel is supported."
    if not str(channel.get("endpoint", "")).startswith(("http://", "https://")):
        return "A rest-hook Subscription needs an http(s) endpoint."
    if is_topic_based(subscription):
        return topics.problem(subscription)
    try:
        compile_criteria(str(subscription.get("criteria", "")))
    except CriteriaError as exc:
        return str(exc)
    return None


async def check_write(ctx: Any) -> None:
    """The REST write hook of Subscription: refuse an unknown topic or filter, or an
    unsafe endpoint, else write as usual.

    Typed loosely (`rest.services.WriteContext`): notifications do not import the
    REST layer that calls it.
    """
    body, settings = ctx.body, ctx.services.settings
    if is_topic_based(body):
        refused_topic = topics.problem(body)
        if refused_topic:
            raise Unprocessable(refused_topic, expression=("Subscription.criteria",))
    channel = body.get("channel", {})
    if channel.get("type") != "rest-hook":
        return None
    refused = await endpoint_problem(str(channel.get("endpoint", "")), Reach.of(settings))
    if refused:
        raise Unprocessable(refused, expression=("Subscription.channel.endpoint",))
    return None


async def activate(ctx: Context) -> dict[str, str]:
    """Settle every requested Subscription; {id: new status}."""
    settled: dict[str, str] = {}
    for subscription in await ctx.outbox.live_subscriptions(None):
        if subscription.get("status") != "requested":
            continue
        reason = problem(subscription)
        updated = {**subscription, "status": "error" if reason else "active"}
        if reason:
            updated["error"] = reason
        try:
            await ctx.store.update(updated, expected_version=int(subscription["meta"]["versionId"]))
        except FhirError:
            continue
        settled[subscription["id"]] = updated["status"]
    return settled
