"""The Celery app as `celery -A fhir_server.notifications.worker` (and the CLI) load it."""

from __future__ import annotations

from fhir_server.notifications import celery_app
from fhir_server.notifications import tasks as _tasks  # registers the tasks

app = celery_app.current()
__all__ = ["_tasks", "app"]
