"""Beat job: publish stored messages that nobody is working on.

Catches what the after-commit publish could not do (broker down at booking
time, API process killed between commit and publish), retries whose
countdown was lost with a worker, and claims whose worker died (older than
the lease). Publishing twice is harmless: the claim lets one task send.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir_server.notifications import celery_app
from fhir_server.notifications.delivery import Context
from fhir_server.notifications.message import details_of
from fhir_server.store.clock import parse_instant, to_instant


async def stranded(ctx: Context, now: datetime | None = None) -> list[str]:
    """Ids of unsent messages that should be published again now."""
    now = now or datetime.now(UTC)
    settings = ctx.settings
    quiet = min(settings.notify_relay_after, settings.notify_lease)
    found = await ctx.outbox.unsent_before(to_instant(now - timedelta(seconds=quiet)))
    lease_cutoff = now - timedelta(seconds=settings.notify_lease)
    relay_cutoff = now - timedelta(seconds=settings.notify_relay_after)
    ids = []
    for communication in found:
        updated = parse_instant(communication["meta"]["lastUpdated"])
        if communication["status"] == "in-progress":
            if updated <= lease_cutoff:
                ids.append(communication["id"])
            continue
        next_attempt = details_of(communication).get("nextAttempt")
        due = parse_instant(next_attempt) if next_attempt else updated
        if due <= now and updated <= relay_cutoff:
            ids.append(communication["id"])
    return ids


async def relay(ctx: Context, now: datetime | None = None) -> list[str]:
    ids = await stranded(ctx, now)
    if ids:
        celery_app.enqueue(ids)
    return ids
