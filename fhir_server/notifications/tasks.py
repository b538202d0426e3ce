"""The Celery tasks: thin wrappers that run the async jobs on the worker's store context.

Besides sending and the notification jobs, beat runs the scheduling engine's
periodic jobs here: hold expiry every minute, rolling Slot generation hourly;
and the report rollups' follower every minute.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from celery import shared_task

from fhir_server.notifications import (
    celery_app,
    changes,
    delivery,
    relay,
    reminders,
    runtime,
    subscriptions,
)
from fhir_server.notifications.celery_app import (
    ACTIVATE_TASK,
    RELAY_TASK,
    RELEASE_HOLDS_TASK,
    REMINDERS_TASK,
    REPORTS_TASK,
    ROLLING_SLOTS_TASK,
    SEND_TASK,
)
from fhir_server.notifications.delivery import Context
from fhir_server.reporting import rollups
from fhir_server.scheduling.booking import release_expired_holds
from fhir_server.scheduling.generation import generate_rolling
from fhir_server.store import patient_claims, recovery

ROLLING_HORIZON_DAYS = 28

changes.install()  # the hold expiry job announces what it releases

F = TypeVar("F", bound=Callable[..., Any])


def task(**options: Any) -> Callable[[F], F]:
    """`shared_task` with its type kept (Celery ships no annotations)."""
    return cast(Callable[[F], F], shared_task(**options))


@task(name=SEND_TASK, acks_late=True)
def send(cid: str) -> str:
    """Send one stored message, with the batch the worker takes along (see `delivery`).

    A transient failure, of this message or another of the batch, comes back
    as a new task after its backoff; the relay job covers a lost one.
    """
    outcomes: dict[str, delivery.Outcome] = runtime.run(lambda ctx: delivery.deliver(ctx, cid))
    for other, outcome in outcomes.items():
        if outcome.retry_in is not None:
            celery_app.enqueue([other], countdown=outcome.retry_in)
    return outcomes[cid].status


@task(name=RELAY_TASK)
def relay_unsent() -> int:
    ids: list[Any] = runtime.run(relay.relay)
    return len(ids)


@task(name=REMINDERS_TASK)
def enqueue_reminders() -> int:
    ids: list[Any] = runtime.run(reminders.enqueue_due)
    return len(ids)


@task(name=ACTIVATE_TASK)
def activate_subscriptions() -> int:
    settled: dict[str, str] = runtime.run(subscriptions.activate)
    return len(settled)


@task(name=RELEASE_HOLDS_TASK)
def release_holds() -> int:
    """Settle units of work a crash cut short; cancel expired holds and free their Slots
    (their hold-expired events go out); forget the patients' claims on days gone by."""

    async def job(ctx: Context) -> int:
        await recovery.settle(ctx.store.database)
        now = datetime.now(UTC)
        released = await release_expired_holds(ctx.store, now)
        await patient_claims.forget_days_before(ctx.store, now.date() - timedelta(days=1))
        return released

    released: int = runtime.run(job)
    return released


@task(name=ROLLING_SLOTS_TASK)
def rolling_slots() -> int:
    """Keep every active Schedule's free Slots generated up to its horizon."""
    reports: dict[str, Any] = runtime.run(
        lambda ctx: generate_rolling(ctx.store, datetime.now(UTC), ROLLING_HORIZON_DAYS)
    )
    return len(reports)


@task(name=REPORTS_TASK)
def follow_reports() -> int:
    """Fold the Appointment, reminder and Slot versions written since the last run into the
    report rollups (exactly once: `reporting.rollups`)."""
    changed: int = runtime.run(
        lambda ctx: rollups.follow(ctx.store, ZoneInfo(ctx.settings.report_timezone))
    )
    return changed
