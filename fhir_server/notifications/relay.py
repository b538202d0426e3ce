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

# Pages of unsent messages one relay run looks through at most.
_PAGES = 20


async def stranded(ctx: Context, now: datetime | None = None, page: int = 500) -> list[str]:
    """Ids of unsent messages that should be published again now (at most `page`).

    Pages on past the messages that wait for a later retry, so that a backlog
    of them never hides a message whose claim expired (or that nobody published).
    """
    now = now or datetime.now(UTC)
    settings = ctx.settings
    quiet = min(settings.notify_relay_after, settings.notify_lease)
    cutoff = to_instant(now - timedelta(seconds=quiet))
    lease_cutoff = now - timedelta(seconds=settings.notify_lease)
    relay_cutoff = now - timedelta(seconds=settings.notify_relay_after)
    ids: list[str] = []
    seen: set[str] = set()
    since = None
    for _ in range(_PAGES):
        found = [c for c in await ctx.outbox.unsent_before(cutoff, page, since=since)
                 if c["id"] not in seen]  # fmt: skip
        for communication in found:
            seen.add(communication["id"])
            updated = parse_instant(communication["meta"]["lastUpdated"])
            if communication["status"] == "in-progress":
                if updated <= lease_cutoff:
                    ids.append(communication["id"])
                continue
            next_attempt = details_of(communication).get("nextAttempt")
            due = parse_instant(next_attempt) if next_attempt else updated
            if due <= now and updated <= relay_cutoff:
                ids.append(communication["id"])
        if not found or len(ids) >= page:
            break
        since = found[-1]["meta"]["lastUpdated"]
    return ids[:page]


async def relay(ctx: Context, now: datetime | None = None) -> list[str]:
    ids = await stranded(ctx, now)
    if ids:
        celery_app.enqueue(ids)
    return ids
