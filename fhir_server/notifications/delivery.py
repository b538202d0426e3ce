"""Sending one stored message at most once per claim, and settling its Communication.

1. Read the Communication; finished ones are left alone (a redelivered task).
2. Claim it: a version-checked update to `in-progress` (compare-and-set), so
   of two workers holding the same task only one sends. A claim older than
   the lease (its worker died) may be taken over.
3. Send; then settle with another version-checked update: `completed`, or
   `not-done` with the reason after a permanent failure or the last attempt,
   or back to `preparation` with the next attempt time (exponential backoff
   with jitter) for a transient failure.

The one window no protocol closes: a worker killed after the receiver
accepted a message but before the settle. The message is then sent again
after the lease, with the same Message-ID / idempotency header.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fhir_server.fhir.errors import Conflict, FhirError, PreconditionFailed
from fhir_server.notifications.channels import email, outbox, push, resthook, sms
from fhir_server.notifications.channels.base import DeliveryError, Rendered
from fhir_server.notifications.codes import RESTHOOK
from fhir_server.notifications.compose import compose, load_versioned
from fhir_server.notifications.message import code_of, details_of, reference_to, with_details
from fhir_server.settings import Settings
from fhir_server.store.clock import parse_instant, to_instant
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore, Version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: ResourceStore
    outbox: OutboxStore


@dataclass(frozen=True)
class Outcome:
    """What the task does next: nothing (`retry_in` None) or run again after `retry_in` s."""

    status: str
    retry_in: float | None = None


def backoff(settings: Settings, attempts: int) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = base * 2^(attempts-1)."""
    ceiling = min(settings.notify_retry_max, settings.notify_retry_base * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


async def deliver(ctx: Context, cid: str, now: datetime | None = None) -> Outcome:
    now = now or datetime.now(UTC)
    current = await ctx.store.current("Communication", cid)
    if current is None or current.deleted or current.resource is None:
        return Outcome("unknown")
    communication = current.resource
    status = communication.get("status")
    details = details_of(communication)
    if status not in ("preparation", "in-progress"):
        return Outcome(str(status))
    if status == "in-progress":
        age = (now - parse_instant(current.updated)).total_seconds()
        if age < ctx.settings.notify_lease:
            return Outcome("claimed-elsewhere")
    next_attempt = details.get("nextAttempt")
    if status == "preparation" and next_attempt and parse_instant(next_attempt) > now:
        return Outcome("waiting", (parse_instant(next_attempt) - now).total_seconds())
    attempts = int(details.get("attempts", 0)) + 1
    claimed = with_details(communication, attempts=attempts, nextAttempt=None)
    claimed["status"] = "in-progress"
    try:
        mine, _ = await ctx.store.update(claimed, expected_version=current.version)
    except (Conflict, PreconditionFailed):
        return Outcome("claimed-elsewhere")
    try:
        await _send(ctx, claimed)
    except DeliveryError as exc:
        return await _failed(ctx, mine, attempts, exc, now)
    except Exception as exc:  # a bug or an unexpected library error must not loop forever
        # The type only: exception text may carry addresses or message content.
        log.error("Unexpected %s while sending message %s", type(exc).__name__, cid)
        return await _failed(
            ctx, mine, attempts, DeliveryError("Internal error while sending."), now
        )
    await _settle(ctx, mine, status="completed", sent=to_instant(datetime.now(UTC)))
    if code_of(claimed, "medium") == RESTHOOK:
        await _subscription_status(ctx, claimed, "active", None)
    return Outcome("completed")


async def _failed(
    ctx: Context, mine: Version, attempts: int, exc: DeliveryError, now: datetime
) -> Outcome:
    assert mine.resource is not None
    if exc.permanent or attempts >= ctx.settings.notify_max_attempts:
        await _settle(ctx, mine, status="not-done", statusReason={"text": exc.reason})
        if code_of(mine.resource, "medium") == RESTHOOK:
            await _subscription_status(ctx, mine.resource, "error", exc.reason)
        return Outcome("not-done")
    delay = backoff(ctx.settings, attempts)
    again = with_details(mine.resource, nextAttempt=to_instant(now + timedelta(seconds=delay)))
    await _settle(ctx, mine, status="preparation", statusReason={"text": exc.reason}, base=again)
    return Outcome("retry", delay)


async def _settle(
    ctx: Context, mine: Version, *, base: dict[str, Any] | None = None, **fields: Any
) -> None:
    body = {**(base or mine.resource or {}), **fields}
    if fields.get("status") == "completed":
        body.pop("statusReason", None)
    try:
        await ctx.store.update(body, expected_version=mine.version)
    except (Conflict, PreconditionFailed):
        log.warning("A message's claim was taken over before it was settled (lease too short?)")


async def _subscription_status(
    ctx: Context, communication: dict[str, Any], status: str, reason: str | None
) -> None:
    reference = reference_to(communication, "Subscription")
    subscription = await load_versioned(ctx.store, reference)
    if subscription is None or subscription.get("status") == status:
        return
    if status == "active" and subscription.get("status") != "requested":
        return  # only requested -> active; an `off` or `error` set by a person stays
    updated = {k: v for k, v in subscription.items() if k != "error"}
    updated["status"] = status
    if reason:
        updated["error"] = reason
    try:
        await ctx.store.update(updated, expected_version=int(subscription["meta"]["versionId"]))
    except FhirError:
        log.warning("Subscription changed while its status was being updated")


async def _send(ctx: Context, communication: dict[str, Any]) -> None:
    channel = code_of(communication, "medium")
    if channel == RESTHOOK:
        await _send_resthook(ctx, communication)
        return
    rendered = await compose(ctx.store, ctx.settings, communication)
    if rendered is None:
        raise DeliveryError("The appointment of this message cannot be read.", permanent=True)
    if channel == "email":
        _send_email(ctx.settings, rendered)
    elif channel == "sms":
        if ctx.settings.sms_base_url:
            sms.send_sms(ctx.settings, rendered.destination, rendered.short)
        else:
            outbox.write_sms(
                ctx.settings, rendered.message_id, rendered.destination, rendered.short
            )
    elif channel == "push":
        await _send_push(ctx, rendered)
    else:
        raise DeliveryError(f"Unknown channel {channel!r}.", permanent=True)


def _send_email(settings: Settings, rendered: Rendered) -> None:
    email.check_address(rendered.destination)
    mail = email.build_email(rendered, settings.smtp_from)
    if settings.smtp_host:
        email.send_email(settings, mail)
    else:
        outbox.write_email(settings, rendered.message_id, mail)


async def _send_push(ctx: Context, rendered: Rendered) -> None:
    browsers = await ctx.outbox.push_subscriptions(rendered.destination)
    if not browsers:
        raise DeliveryError("No browser is registered for push.", permanent=True)
    payload = orjson.dumps(
        {"title": rendered.subject, "body": rendered.short, "url": rendered.link}
    ).decode()
    delivered = 0
    for info in browsers:
        if push.send_push(ctx.settings, info, payload):
            delivered += 1
        else:
            await ctx.outbox.drop_push_subscription(push.subscription_key(info))
    if not delivered:
        raise DeliveryError("Every registered browser has unsubscribed.", permanent=True)


async def _send_resthook(ctx: Context, communication: dict[str, Any]) -> None:
    subscription = await load_versioned(ctx.store, reference_to(communication, "Subscription"))
    if subscription is None or subscription.get("status") not in ("requested", "active"):
        raise DeliveryError("The Subscription is no longer active.", permanent=True)
    resource = await load_versioned(ctx.store, reference_to(communication, "Appointment"))
    if resource is None:
        raise DeliveryError("The appointment of this message cannot be read.", permanent=True)
    resthook.notify(subscription, resource)
