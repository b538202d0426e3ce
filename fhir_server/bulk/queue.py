"""Publishing export work to the Celery broker (from the API at kick-off, and from workers)."""

from __future__ import annotations

import logging

from fhir_server.notifications import celery_app
from fhir_server.notifications.celery_app import EXPORT_TASK, RESUME_EXPORTS_TASK

log = logging.getLogger(__name__)


def publish(job_id: str) -> bool:
    """Queue a slice of the job; False when the broker is down (never raises: the job is
    stored, and the resume scan that beat runs every minute queues it when the broker is back)."""
    return _send(EXPORT_TASK, [job_id])


def publish_resume() -> bool:
    """Queue a scan for stalled jobs (a worker that starts asks for one)."""
    return _send(RESUME_EXPORTS_TASK, [])


def _send(name: str, args: list[str]) -> bool:
    try:
        celery_app.current().send_task(name, args=args, retry=False)
    except Exception:  # any broker failure: the stored job is picked up by the resume scan
        log.warning("Broker unavailable; %s left for the resume scan", name)
        return False
    return True
