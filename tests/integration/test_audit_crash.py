"""A `fhir-server serve` killed with SIGKILL right after answering loses no AuditEvent:
every answered request's event is in the journal on disk, and the next start stores it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from fhir_server.cli import app as cli_app
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.settings import Settings
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore
from tests.integration.auth_helpers import PASSWORD, appointment

pytestmark = pytest.mark.slow  # fhir-server subprocesses

CLI = str(Path(sys.executable).with_name("fhir-server"))
READS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [CLI, "serve", "--port", str(port)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)


def _store_resources(settings: Settings) -> tuple[str, str]:
    async def write() -> tuple[str, str]:
        database = await connect(settings.mongodb_uri or "", settings.database)
        try:
            store = ResourceStore(database, ResourceIndexer(settings.base_url))
            patient = await store.create({"resourceType": "Patient", "name": [{"family": "K"}]})
            appt = await store.create(appointment(patient.id))
            return patient.id, appt.id
        finally:
            await database.close()

    return asyncio.run(write())


def _stored_ids(settings: Settings) -> set[str]:
    async def read() -> set[str]:
        database = await connect(settings.mongodb_uri or "", settings.database)
        try:
            return {doc["_id"] async for doc in database.db["AuditEvent"].find({}, {"_id": 1})}
        finally:
            await database.close()

    return asyncio.run(read())


def _journaled(directory: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in directory.glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]


def test_events_survive_a_kill_right_after_the_answers(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    settings = settings_factory(public_base_url=base, data_dir=tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    env |= {
        "FHIR_MONGODB_URI": settings.mongodb_uri or "",
        "FHIR_DATABASE": settings.database,
        "FHIR_PUBLIC_BASE_URL": base,
        "FHIR_DATA_DIR": str(settings.data_dir),
        "FHIR_AUTH_ENABLED": "true",
        "FHIR_REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0",  # no worker: reads only
        "FHIR_LOG_LEVEL": "WARNING",
    }
    patient, appt = _store_resources(settings)
    runner = CliRunner()
    added = runner.invoke(
        cli_app,
        [
            *("users", "add", "--username", "kim", "--role", "patient", "--password-stdin"),
            *("--fhir-user", f"Patient/{patient}"),
        ],
        env=env,
        input=f"{PASSWORD}\n",
    )
    assert added.exit_code == 0, added.output
    minted = runner.invoke(cli_app, ["users", "token", "kim", "--scope", "patient/*.rs"], env=env)
    assert minted.exit_code == 0, minted.output
    headers = {"Authorization": f"Bearer {orjson.loads(minted.stdout)['access_token']}"}

    server = _serve(env, port, tmp_path / "first.log")
    try:
        with httpx.Client(base_url=base, headers=headers) as http:
            for _ in range(READS):
                assert http.get(f"/Appointment/{appt}").status_code == 200
            assert http.get(f"/Appointment/{uuid.uuid4()}").status_code == 404
            server.send_signal(signal.SIGKILL)  # right after the last answer
    finally:
        server.kill()
        server.wait(10)
    journal = settings.data_dir / "audit-journal"
    journaled = [e for e in _journaled(journal) if e["type"]["code"] == "rest"]
    assert len(journaled) == READS + 1, "every answered request was journaled before its answer"
    assert sorted(e["outcome"] for e in journaled) == ["0"] * READS + ["4"]

    again = _serve(env, port, tmp_path / "second.log")  # its start relays the dead one's file
    try:
        assert {e["id"] for e in journaled} <= _stored_ids(settings)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
    assert list(journal.glob("*.jsonl")) == [], "relayed journals are removed"
