"""The `fhir-server` command line: `serve`, `demo`, and the `outbox`, `users`,
`clients`, `keys` and `slots` sub-commands of the packages that own them.

Without FHIR_MONGODB_URI the commands share one embedded store per data
directory: `serve` starts it and keeps it up for its own lifetime, and every
other command reuses it through the record in the data directory (or starts
one for its own duration when none is running), so two processes never open
the same data file.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
import uvicorn

from fhir_server.app import create_app
from fhir_server.audit import cli as audit_cli
from fhir_server.auth import cli as auth_cli
from fhir_server.bulk import cli as export_cli
from fhir_server.cli_reindex import reindex
from fhir_server.cli_support import fail as _fail
from fhir_server.cli_support import load_settings as _settings
from fhir_server.cli_support import store_errors, warn_production
from fhir_server.demo import DemoResult, prepare_demo
from fhir_server.demo.clinic import CLINICIANS, practitioner_id
from fhir_server.demo.full import SLOT_WEEKS
from fhir_server.logs import configure_logging
from fhir_server.notifications import changes
from fhir_server.notifications import cli as notifications_cli
from fhir_server.publishing.cli import calendar_feed_app
from fhir_server.reporting import cli as reports_cli
from fhir_server.rest.services import Services
from fhir_server.scheduling.cli import slots_app
from fhir_server.settings import Settings
from fhir_server.store import embedded
from fhir_server.store.database import connect
from fhir_server.ui.client import site_root
from fhir_server.visits import recorder as visits
from fhir_server.watchdog import Watchdog

T = TypeVar("T")

changes.install()  # every command that books or expires holds announces it
visits.install()  # and records what a visit's outcome leaves (Encounter, ChargeItems)

app = typer.Typer(
    name="fhir-server",
    help="FHIR R4 clinic booking server.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """FHIR R4 clinic booking server."""
    _settings()  # an invalid FHIR_* variable stops every command, in one line


def _refuse_demo_in_production(settings: Settings) -> None:
    """The demo clinic (public logins, a known password) never goes near production data."""
    if settings.environment == "production":
        _fail(
            "The demo clinic is for development only; it is refused when "
            "FHIR_ENVIRONMENT=production (nothing was written)."
        )


def _redacted(uri: str) -> str:
    """The URI without user name and password, fit to print."""
    return re.sub(r"//[^@/]*@", "//***@", uri)


@contextlib.contextmanager
def _store(settings: Settings, watchdog: Watchdog | None = None) -> Iterator[tuple[Settings, str]]:
    """Settings that point at a reachable store for this command's lifetime, and where it is.

    With a `watchdog` (`serve`), an embedded store this command starts is
    supervised (restarted when killed) and ends with this process.
    """
    if settings.mongodb_uri:
        yield settings, f"MongoDB at {_redacted(settings.mongodb_uri)}"
        return
    with store_errors():
        server = embedded.start(settings.data_dir)
    whose = "started by this command" if server.owned else f"shared, pid {server.pid}"
    where = (
        f"embedded store (nx-27017) at {server.uri}, {whose}; data in {settings.data_dir.resolve()}"
    )
    supervisor = None
    if watchdog is not None and server.owned:
        watchdog.watch(server.pid, group=True)
        supervisor = embedded.Supervisor(
            server, settings.data_dir, lambda new: watchdog.watch(new.pid, group=True)
        )
    try:
        yield settings.model_copy(update={"mongodb_uri": server.uri}), where
    finally:
        if supervisor is not None:
            supervisor.stop()
        else:
            embedded.stop(server, settings.data_dir)


@contextlib.contextmanager
def _watchdog() -> Iterator[Watchdog]:
    """The watchdog that ends `serve`'s children if `serve` dies (see `fhir_server.watchdog`)."""
    watchdog = Watchdog()
    try:
        yield watchdog
    finally:
        watchdog.close()


async def _load_demo(settings: Settings) -> DemoResult:
    """Load through the app's own stores, so indexing is the same as for API writes."""
    application = create_app(settings)
    with typer.progressbar(length=1, label="Loading demo clinic") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(1)

        async with application.router.lifespan_context(application):
            services: Services = application.state.services
            auth = application.state.auth
            return await prepare_demo(
                services.store,
                auth.store if auth else None,
                settings,
                datetime.now(UTC),
                progress,
            )


async def _probe(settings: Settings) -> None:
    """Fail before the server starts, not in its lifespan, when the store cannot be reached."""
    assert settings.mongodb_uri is not None
    database = await connect(settings.mongodb_uri, settings.database)
    await database.close()


def _run(work: Coroutine[Any, Any, T]) -> T:
    with store_errors():
        return asyncio.run(work)


def _command() -> str:
    """How the user can call this program again: plain when on PATH, else the path used."""
    invoked = Path(sys.argv[0])
    on_path = shutil.which(invoked.name)
    if on_path and Path(on_path).resolve() == invoked.resolve():
        return invoked.name
    with contextlib.suppress(ValueError):
        return str(invoked.resolve().relative_to(Path.cwd()))
    return str(invoked)


def _describe(result: DemoResult, settings: Settings, overridden: bool = False) -> str:
    """What the demo holds and how to try it. `overridden`: serve's --host/--port differ
    from the environment, so the token recipe names the base URL that tokens are for."""
    summary = result.clinic
    counts = ", ".join(f"{n} {rtype}" for rtype, n in summary.by_type.items())
    practitioner = f"{settings.base_url}/Practitioner/{practitioner_id(CLINICIANS[0])}"
    lines = [
        f"Demo clinic: {summary.total} resources ({counts}).",
        f"  {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged.",
        f"  Slots for the next {SLOT_WEEKS} weeks: {result.slots_created} created, "
        f"{result.slots_kept} already there.",
        f"  Past appointments and their patients (for the reports): {result.past_appointments} "
        "written.",
    ]
    if result.access:
        access = result.access
        lines += [
            f"  Logins (password '{access.password}'): {access.patient_login}, "
            f"{access.practitioner_login}, {access.frontdesk_login} (front desk), "
            f"{access.admin_login} (admin).",
            f"  Patient portal: {site_root(settings)}/portal/ "
            f"(sign in as {access.patient_login}, password '{access.password}').",
            f"  SMART app: client_id '{access.client_id}' (public), "
            f"redirect {access.redirect_uris[0]}.",
            f"  Try: TOKEN=$({_base_url_env(settings, overridden)}{_command()} users token "
            "demo-practitioner | "
            "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
            f'       curl -H "Authorization: Bearer $TOKEN" {practitioner}',
        ]
    else:
        lines.append(f"  Try: curl {practitioner}")
    lines.append(f"       curl {settings.base_url}/metadata")
    return "\n".join(lines)


def _base_url_env(settings: Settings, overridden: bool) -> str:
    """`FHIR_PUBLIC_BASE_URL=... ` when a command run from the same shell would otherwise
    mint tokens for another base URL (their audience) than the one being served."""
    if not overridden or settings.public_base_url:
        return ""
    return f"FHIR_PUBLIC_BASE_URL={settings.base_url} "


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            _fail(
                f"Cannot listen on {host}:{port} (in use or not a local address); "
                "stop the other server or pass --host/--port."
            )


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    """Uvicorn re-raises SIGTERM after its graceful shutdown; end through `finally` blocks."""
    raise SystemExit(0)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [FHIR_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [FHIR_PORT].")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo clinic first.")] = False,
) -> None:
    """Run the FHIR server (starting the embedded store when FHIR_MONGODB_URI is unset)."""
    settings = _settings(host=host, port=port)
    if demo:
        _refuse_demo_in_production(settings)
    configure_logging(settings.log_level)
    warn_production(settings)
    _check_port(settings.host, settings.port)
    with contextlib.ExitStack() as background:
        watchdog = background.enter_context(_watchdog())  # entered first: ends last
        ready, where = background.enter_context(_store(settings, watchdog))
        summary = _run(_load_demo(ready)) if demo else _run(_probe(ready))
        workers = background.enter_context(notifications_cli.background_workers(ready, watchdog))
        root = f"http://{settings.host}:{settings.port}"
        typer.echo(f"FHIR server: {settings.base_url}  (health: {root}/healthz, {root}/readyz)")
        typer.echo(f"Store: {where}; database '{settings.database}'")
        for queue, worker in workers.items():
            beat = " and beat" if queue == notifications_cli.BEAT_QUEUE else ""
            typer.echo(f"Queue {queue}: Celery worker{beat}, pid {worker.pid}")
        if summary:
            typer.echo(_describe(summary, settings, host is not None or port is not None))
        typer.echo("Stop with Ctrl+C.")
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(create_app(ready), **uvicorn_options(ready))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `serve` runs uvicorn. Behind a proxy, the client address (per-IP limits, audit)
    comes from X-Forwarded-For, but only when the proxy is one we were told to trust; with
    none configured the headers are ignored whoever sends them (uvicorn would otherwise
    trust loopback). No `server` header: the version banner only helps an attacker."""
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": False,
    }


@app.command()
def demo() -> None:
    """Load the demo clinic; running it again changes nothing."""
    settings = _settings()
    _refuse_demo_in_production(settings)
    with _store(settings) as (ready, where):
        typer.echo(f"Store: {where}; database '{settings.database}'")
        summary = _run(_load_demo(ready))
    typer.echo(_describe(summary, settings))


app.add_typer(notifications_cli.outbox_app)
app.add_typer(auth_cli.users_app)
app.add_typer(auth_cli.clients_app)
app.add_typer(auth_cli.keys_app)
app.add_typer(slots_app, name="slots")
app.add_typer(audit_cli.audit_app)
app.add_typer(export_cli.export_app)
app.add_typer(calendar_feed_app)
app.command("report")(reports_cli.report)
app.command()(reindex)
app.command()(notifications_cli.worker)
app.command()(notifications_cli.beat)
