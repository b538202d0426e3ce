"""Sending stored messages in batches, each at most once per claim, and settling them.

The queue holds one task per message; a task wakes the worker, which takes
the task's message together with up to `BATCH - 1` never-attempted ones, so
one claim, one read and one settle serve the whole batch (the later tasks of
the batch find their message settled by this process and return at once).
A task is published once its write is complete, but the messages taken along
may belong to writes still under way (on a store without transactions their
rows appear one by one, and a failing write takes them back): only messages
older than `SETTLED_AFTER` are taken along. And an appointment version that
cannot be read is retried like any transient failure: the message ends
`not-done` for it only after its last attempt.

1. Read the batch; finished messages are left alone (a redelivered task).
2. Claim: one versioned write to `in-progress` (compare-and-set per
   message), so of two workers holding the same message only one sends it.
   A claim older than the lease (its worker died) may be taken over.
3. Send one by one (one SMTP connection). Each accepted message gets a sent
   mark before the next goes out; whoever takes over a dead worker's claims
   settles the marked ones without sending them again (an outbox file needs
   no mark: writing it again gives the same file). A batch that nears the
   lease stops and hands its unsent claims back.
4. Settle the batch with one versioned write: `completed`, or `not-done`
   with the reason after a permanent failure or the last attempt, or back to
   `preparation` with the next attempt time (exponential backoff with jitter)
   for a transient failure.

The one window no protocol closes: a worker killed after the receiver
accepted a message but before its sent mark was written. That one message is
then sent again after the lease, with the same Message-ID / idempotency header.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fhir_server.fhir.errors import FhirError
from fhir_server.notifications.channels import email, outbox, push, resthook, sms
from fhir_server.notifications.channels.base import DeliveryError, Rendered
from fhir_server.notifications.channels.outbound import Reach
from fhir_server.notifications.codes import RESTHOOK
from fhir_server.notifications.compose import compose, load_versioned
from fhir_server.notifications.message import (
    code_of,
    details_of,
    focus_of,
    reference_to,
    with_details,
)
from fhir_server.notifications.notification_bundle import notification_for
from fhir_server.notifications.topics import is_topic_based
from fhir_server.settings import Settings
from fhir_server.store.clock import parse_instant, to_instant
from fhir_server.store.message_batches import MessageBatches
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore, Version

log = logging.getLogger(__name__)

# Messages per batch: enough that the fixed cost of a store command is shared
# widely, few enough that a batch ends well within the lease.
BATCH = 50
# Seconds after which a message's write is complete (or was rolled back or
# recovered): younger messages are left to their own tasks.
SETTLED_AFTER = 5.0
_FINAL = ("completed", "not-done")


class Finished:
    """Ids this process settled for good: their own later tasks need no store read.

    Only final states are kept (a message waiting for a retry has a task to
    run); the oldest are forgotten beyond `limit`.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._ids: dict[str, None] = {}

    def add(self, ids: list[str]) -> None:
        self._ids.update(dict.fromkeys(ids))
        while len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]

    def __contains__(self, cid: object) -> bool:
        return cid in self._ids


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: ResourceStore
    outbox: OutboxStore
    finished: Finished = field(default_factory=Finished)


@dataclass(frozen=True)
class Outcome:
    """What the task does next: nothing (`retry_in` None) or run again after `retry_in` s."""

    status: str
    retry_in: float | None = None


@dataclass(frozen=True)
class _Sent:
    """One claimed message after its send: the status to settle it with."""

    before: Version  # the version claimed (to hand back unchanged if not sent)
    claim: Version
    status: str  # completed | failed | released
    error: DeliveryError | None = None
    at: str | None = None


def backoff(settings: Settings, attempts: int) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = base * 2^(attempts-1)."""
    ceiling = min(settings.notify_retry_max, settings.notify_retry_base * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


async def deliver(ctx: Context, cid: str, now: datetime | None = None) -> dict[str, Outcome]:
    """Send `cid` and the batch taken with it; the outcome of each message looked at."""
    if cid in ctx.finished:
        return {cid: Outcome("finished")}
    now = now or datetime.now(UTC)
    batches = MessageBatches(ctx.store)
    found = await batches.fresh(BATCH, to_instant(now - timedelta(seconds=SETTLED_AFTER)))
    outcomes: dict[str, Outcome] = {}
    if all(version.id != cid for version in found):
        head = await ctx.store.current("Communication", cid)
        if head is None:
            outcomes[cid] = Outcome("unknown")
        found = [head, *found[: BATCH - 1]] if head else found
    ready = []
    for version in found:
        waiting = _not_claimable(ctx.settings, version, now)
        if waiting is None:
            ready.append((version, _claimed_body(version)))
        else:
            outcomes[version.id] = waiting
    claims = await batches.update_many(ready)
    mine = []
    for (before, _), claim in zip(ready, claims, strict=True):
        if claim is None:
            outcomes[before.id] = Outcome("claimed-elsewhere")
        else:
            mine.append((before, claim))
    sent = await _send_all(ctx, batches, mine)
    outcomes.update(await _settle_all(ctx, batches, sent, now))
    ctx.finished.add([i for i, outcome in outcomes.items() if outcome.status in _FINAL])
    return outcomes


def _unreadable(focus: str | None = "Appointment") -> DeliveryError:
    """Not permanent: the version may belong to a write whose rows are still appearing."""
    kind = str(focus or "Appointment").split("/")[0].lower()
    return DeliveryError(f"The {kind} of this message cannot be read.")


def _not_claimable(settings: Settings, current: Version, now: datetime) -> Outcome | None:
    """Why this message is not to be claimed now (None: claim it)."""
    communication = current.resource
    if current.deleted or communication is None:
        return Outcome("unknown")
    status = communication.get("status")
    if status not in ("preparation", "in-progress"):
        return Outcome(str(status))
    if status == "in-progress":
        age = (now - parse_instant(current.updated)).total_seconds()
        return Outcome("claimed-elsewhere") if age < settings.notify_lease else None
    next_attempt = details_of(communication).get("nextAttempt")
    if next_attempt and parse_instant(next_attempt) > now:
        return Outcome("waiting", (parse_instant(next_attempt) - now).total_seconds())
    return None


def _claimed_body(current: Version) -> dict[str, Any]:
    assert current.resource is not None
    attempts = int(details_of(current.resource).get("attempts", 0)) + 1
    claimed = with_details(current.resource, attempts=attempts, nextAttempt=None)
    claimed["status"] = "in-progress"
    return claimed


def _history_key(reference: str | None) -> str | None:
    """`Type/id/_history/v` -> the history key `Type/id/v` (None for unversioned)."""
    parts = (reference or "").split("/")
    return f"{parts[0]}/{parts[1]}/{parts[3]}" if len(parts) == 4 else None


async def _send_all(
    ctx: Context, batches: MessageBatches, mine: list[tuple[Version, Version]]
) -> list[_Sent]:
    """Send the claimed messages in order, marking each accepted one before the next."""
    resumed = [claim.id for before, claim in mine if _status(before) == "in-progress"]
    already = await batches.sent_among(resumed) if resumed else set()
    keys = set()
    for _, claim in mine:
        assert claim.resource is not None
        details = details_of(claim.resource)
        keys |= {
            _history_key(focus_of(claim.resource)),
            _history_key(details.get("replaces")),
        }
    store = batches.with_versions(await batches.history_versions(sorted(k for k in keys if k)))
    started = time.monotonic()
    out = []
    for before, claim in mine:
        assert claim.resource is not None
        if claim.id in already:  # sent by a worker that died before settling
            out.append(_Sent(before, claim, "completed", at=claim.updated))
            continue
        if time.monotonic() - started > ctx.settings.notify_lease / 2:
            out.append(_Sent(before, claim, "released"))
            continue
        try:
            await _send(ctx, store, claim.resource)
        except DeliveryError as exc:
            out.append(_Sent(before, claim, "failed", exc))
            continue
        except Exception as exc:  # a bug or an unexpected library error must not loop forever
            # The type only: exception text may carry addresses or message content.
            log.error("Unexpected %s while sending message %s", type(exc).__name__, claim.id)
            error = DeliveryError("Internal error while sending.")
            out.append(_Sent(before, claim, "failed", error))
            continue
        if _leaves_the_machine(ctx.settings, claim.resource):
            await batches.mark_sent(claim.id)
        out.append(_Sent(before, claim, "completed", at=to_instant(datetime.now(UTC))))
    return out


def _status(version: Version) -> str:
    return str((version.resource or {}).get("status", ""))


async def _settle_all(
    ctx: Context, batches: MessageBatches, sent: list[_Sent], now: datetime
) -> dict[str, Outcome]:
    """One versioned write for the whole batch; the outcome of each message."""
    bodies, outcomes = [], {}
    for item in sent:
        body, outcome = _settled(ctx.settings, item, now)
        bodies.append((item.claim, body))
        outcomes[item.claim.id] = outcome
    written = await batches.update_many(bodies)
    if any(version is None for version in written):
        log.warning("A message's claim was taken over before it was settled (lease too short?)")
    done = [v.id for v in written if v is not None and _status(v) == "completed"]
    await batches.forget_sent(done)
    for item, version in zip(sent, written, strict=True):
        if version is not None and code_of(item.claim.resource or {}, "medium") == RESTHOOK:
            if item.status == "completed":
                await _subscription_status(ctx, version.resource or {}, "active", None)
            elif _status(version) == "not-done" and item.error is not None:
                await _subscription_status(ctx, version.resource or {}, "error", item.error.reason)
    return outcomes


def _settled(settings: Settings, item: _Sent, now: datetime) -> tuple[dict[str, Any], Outcome]:
    """The body a sent (or failed, or handed back) message is settled with."""
    claimed = item.claim.resource or {}
    if item.status == "completed":
        body = {k: v for k, v in claimed.items() if k != "statusReason"}
        return {**body, "status": "completed", "sent": item.at}, Outcome("completed")
    if item.status == "released":  # not tried: as it was before the claim, to be sent soon
        return dict(item.before.resource or {}), Outcome("released", 0.0)
    assert item.error is not None
    attempts = int(details_of(claimed).get("attempts", 1))
    reason = {"text": item.error.reason}
    if item.error.permanent or attempts >= settings.notify_max_attempts:
        return {**claimed, "status": "not-done", "statusReason": reason}, Outcome("not-done")
    delay = backoff(settings, attempts)
    again = with_details(claimed, nextAttempt=to_instant(now + timedelta(seconds=delay)))
    return {**again, "status": "preparation", "statusReason": reason}, Outcome("retry", delay)


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


def _leaves_the_machine(settings: Settings, communication: dict[str, Any]) -> bool:
    """Whether sending it twice would reach someone twice: an outbox file (no SMTP or SMS
    provider set) is replaced by the same file, so it needs no sent mark (one store write
    less per message in the default setup)."""
    channel = code_of(communication, "medium")
    if channel == "email":
        return bool(settings.smtp_host)
    if channel == "sms":
        return bool(settings.sms_base_url)
    return True


async def _send(ctx: Context, store: ResourceStore, communication: dict[str, Any]) -> None:
    channel = code_of(communication, "medium")
    if channel == RESTHOOK:
        await _send_resthook(ctx.settings, store, communication)
        return
    rendered = await compose(store, ctx.settings, communication)
    if rendered is None:
        raise _unreadable()
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
    if settings.smtp_host:
        email.send_email(settings, email.build_email(rendered, settings.smtp_from))
    else:
        mail = email.build_email(rendered, settings.smtp_from, policy=email.FILE)
        outbox.write_email(settings, rendered.message_id, mail.data)


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


async def _send_resthook(
    settings: Settings, store: ResourceStore, communication: dict[str, Any]
) -> None:
    subscription = await load_versioned(store, reference_to(communication, "Subscription"))
    if subscription is None or subscription.get("status") not in ("requested", "active"):
        raise DeliveryError("The Subscription is no longer active.", permanent=True)
    reach = Reach.of(settings)
    if is_topic_based(subscription):
        bundle = await notification_for(settings.base_url, store, subscription, communication)
        resthook.notify(subscription, bundle, reach)
        return
    focus = focus_of(communication)
    resource = await load_versioned(store, focus)
    if resource is None:
        raise _unreadable(focus)
    resthook.notify(
        subscription, resource if subscription.get("channel", {}).get("payload") else None, reach
    )
