"""The Celery tasks: thin wrappers that run the async jobs on the worker's store context."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from fhir_server.notifications import delivery, relay, reminders, runtime, subscriptions
from fhir_server.notifications.celery_app import (
    ACTIVATE_TASK,
    RELAY_TASK,
    REMINDERS_TASK,
    SEND_TASK,
)


@shared_task(name=SEND_TASK, bind=True, acks_late=True, max_retries=None)
def send(self: Task, cid: str) -> str:
    """Send one stored message; a transient failure comes back after its backoff."""
    outcome: delivery.Outcome = runtime.run(lambda ctx: delivery.deliver(ctx, cid))
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(name=RELAY_TASK)
def relay_unsent() -> int:
    ids: list[Any] = runtime.run(relay.relay)
    return len(ids)


@shared_task(name=REMINDERS_TASK)
def enqueue_reminders() -> int:
    ids: list[Any] = runtime.run(reminders.enqueue_due)
    return len(ids)


@shared_task(name=ACTIVATE_TASK)
def activate_subscriptions() -> int:
    settled: dict[str, str] = runtime.run(subscriptions.activate)
    return len(settled)
