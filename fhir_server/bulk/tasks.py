"""The Celery tasks of bulk export: run a slice of a job; resume stalled jobs.

`export` runs one slice (`bulk.runner`) and queues the next when the job is
not finished. A job whose worker was killed keeps its lease until
`export_lease` runs out; then `resume_exports` (run by beat every minute, and
asked for by every worker as it starts) queues it again, and the new slice
resumes from the job's last checkpoint. A slice that fails three times in a
row marks the job `error`, so a bad job cannot loop for ever.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from celery.signals import worker_ready

from fhir_server.bulk import queue
from fhir_server.bulk.runner import Runner, Slice
from fhir_server.notifications import runtime
from fhir_server.notifications.celery_app import EXPORT_TASK, RESUME_EXPORTS_TASK
from fhir_server.notifications.delivery import Context
from fhir_server.notifications.tasks import task
from fhir_server.store.export_store import ExportStore

log = logging.getLogger(__name__)
MAX_FAILURES = 3


@task(name=EXPORT_TASK, acks_late=True)
def export(job_id: str) -> str:
    owner = uuid.uuid4().hex

    async def job(ctx: Context) -> Slice:
        try:
            return await Runner(ctx.store, ctx.settings).run(job_id, owner)
        except Exception:
            exports = ExportStore(ctx.store.database)
            if await exports.count_failure(job_id, owner) >= MAX_FAILURES:
                lifetime = ctx.settings.export_file_lifetime
                await exports.fail(job_id, "The export failed.", time.time() + lifetime)
            raise

    try:
        done: Slice = runtime.run(job)
    except Exception as exc:  # logged by type only: no PHI in logs
        log.warning("export slice failed (%s); the resume scan retries it", type(exc).__name__)
        return "failed"
    if done.outcome == "more":
        queue.publish(job_id)
    return done.outcome


@task(name=RESUME_EXPORTS_TASK)
def resume_exports() -> int:
    """Queue every unfinished job whose worker's lease ran out; delete expired jobs."""

    async def scan(ctx: Context) -> list[str]:
        exports = ExportStore(ctx.store.database)
        await exports.ensure_indexes()
        now = time.time()
        await exports.purge_expired(now)
        return await exports.stalled(now)

    stalled: list[str] = runtime.run(scan)
    for job_id in stalled:
        queue.publish(job_id)
    return len(stalled)


def _resume_on_start(**_: Any) -> None:
    """A worker that starts (after a crash, perhaps) looks for jobs left behind."""
    queue.publish_resume()


worker_ready.connect(_resume_on_start, weak=False)
