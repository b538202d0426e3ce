"""`fhir-server worker`, `fhir-server beat` and `fhir-server outbox list`.

The main CLI adds these with `app.add_typer(outbox_app)` and `app.command()(worker)`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fhir_server.notifications.channels.outbox import list_outbox, outbox_dir
from fhir_server.settings import Settings

outbox_app = typer.Typer(
    name="outbox", help="Messages written to the local outbox.", no_args_is_help=True
)


def _celery_main(argv: list[str]) -> None:
    from fhir_server.notifications.worker import app

    app.start(argv)


def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker that sends notifications (broker: FHIR_REDIS_URL or embedded Redis)."""
    _celery_main(
        ["worker", "-Q", "notifications", f"--concurrency={concurrency}", f"--loglevel={loglevel}"]
    )


def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run Celery beat: relay of unsent messages, due reminders, Subscription activation."""
    settings = Settings()
    schedule = settings.data_dir / "celerybeat-schedule"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _celery_main(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"])


@outbox_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(help="Show at most this many, newest last.")] = 50,
) -> None:
    """List messages that went to the outbox (no SMTP/SMS settings)."""
    settings = Settings()
    entries = list_outbox(settings)[-limit:]
    if not entries:
        typer.echo(f"The outbox at {outbox_dir(settings)} is empty.")
        return
    for entry in entries:
        typer.echo(
            f"{entry.written:%Y-%m-%d %H:%M:%S}Z  {entry.kind:5}  {entry.to:32.32}  "
            f"{entry.subject or '-'}\n    {entry.path}"
        )
