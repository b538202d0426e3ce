"""`fhir-server demo` and `fhir-server serve` as real subprocesses on the embedded store.

Each test gets its own data directory; no FHIR_* variable of the outer
environment leaks in, so the commands see exactly what a user's shell would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.demo.clinic import demo_resources
from fhir_server.demo.history import patients as history_patients
from fhir_server.store import embedded
from fhir_server.store.database import connect

pytestmark = pytest.mark.slow  # fhir-server subprocesses

CLI = str(Path(sys.executable).with_name("fhir-server"))
PRACTITIONER = "demo-practitioner-ada-okafor"
TOTAL = len(demo_resources())
DEMO_TYPES = sorted({r["resourceType"] for r in demo_resources()})


def _env(data_dir: Path, database: str, **extra: str) -> dict[str, str]:
    """A clean FHIR_* environment; SMART enforcement is off (the auth tests cover it), and
    passwords are hashed at the suite's cost (tests/conftest.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    env.update(
        FHIR_DATA_DIR=str(data_dir),
        FHIR_DATABASE=database,
        FHIR_LOG_LEVEL="WARNING",
        FHIR_AUTH_ENABLED="false",
        FHIR_PASSWORD_HASHING="cheapest-for-tests",
    )
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _snapshot(uri: str, database: str) -> dict[str, Any]:
    """Every demo type's current rows as (id, version, updated), and the history row count."""

    async def read() -> dict[str, Any]:
        db = await connect(uri, database)
        try:
            found: dict[str, Any] = {}
            for name in DEMO_TYPES:
                rows = db.db[name].find({}, {"version": 1, "updated": 1})
                found[name] = sorted([(r["_id"], r["version"], r["updated"]) async for r in rows])
            found["history"] = await db.db["history"].count_documents({})
            return found
        finally:
            await db.close()

    return asyncio.run(read())


@pytest.fixture
def shared_store(tmp_path: Path) -> Iterator[tuple[Path, embedded.EmbeddedServer]]:
    """An embedded store started the way `serve` starts it, for the commands to reuse."""
    server = embedded.start(tmp_path)
    try:
        yield tmp_path, server
    finally:
        embedded.stop(server, tmp_path)


def test_demo_twice_changes_nothing(shared_store: tuple[Path, embedded.EmbeddedServer]) -> None:
    data_dir, server = shared_store
    database = f"cli{uuid.uuid4().hex[:10]}"
    env = _env(data_dir, database)

    first = _cli(env, "demo")
    assert first.returncode == 0, first.stderr
    assert f"shared, pid {server.pid}" in first.stdout
    assert f"{TOTAL} created, 0 updated, 0 unchanged" in first.stdout
    loaded = _snapshot(server.uri, database)
    assert {name: len(rows) for name, rows in loaded.items() if name != "history"} == {
        "HealthcareService": 3,
        "Location": 2,
        "Organization": 1,
        "Patient": 2 + len(history_patients()),  # the demo's and those of its past
        "Practitioner": 3,
        "PractitionerRole": 3,
        "Schedule": 3,
    }
    slots = _slots_created(first.stdout)
    assert slots > 0  # four weeks of Slots for three Schedules
    past = _past_written(first.stdout)
    assert past > len(history_patients())  # and the past appointments
    assert loaded["history"] == TOTAL + slots + past

    second = _cli(env, "demo")
    assert second.returncode == 0, second.stderr
    assert f"0 created, 0 updated, {TOTAL} unchanged" in second.stdout
    assert f"0 created, {slots} already there" in second.stdout
    assert _past_written(second.stdout) == 0
    assert _snapshot(server.uri, database) == loaded
    running = embedded.running(data_dir)
    assert running is not None and running.pid == server.pid, "a second store was started"


def _past_written(stdout: str) -> int:
    found = re.search(
        r"Past appointments and their patients \(for the reports\): (\d+) written", stdout
    )
    assert found, stdout
    return int(found[1])


def _slots_created(stdout: str) -> int:
    match = re.search(r"Slots for the next 4 weeks: (\d+) created", stdout)
    assert match, stdout
    return int(match.group(1))


def test_demo_logins_and_minted_tokens(tmp_path: Path) -> None:
    """With SMART on, the demo prints logins, and `users token` mints a patient-bound token."""
    env = _env(tmp_path, "fhir", FHIR_AUTH_ENABLED="true")
    first = _cli(env, "demo")
    assert first.returncode == 0, first.stderr
    assert "Logins (password 'demo-clinic-passphrase'): demo-patient, demo-practitioner" in (
        first.stdout
    )
    assert "Patient portal: http://127.0.0.1:" in first.stdout
    assert "/portal/ (sign in as demo-patient, password 'demo-clinic-passphrase')" in first.stdout
    minted = _cli(env, "users", "token", "demo-patient", "--scope", "patient/*.rs")
    assert minted.returncode == 0, minted.stderr
    token = orjson.loads(minted.stdout)
    assert token["token_type"] == "Bearer" and token["scope"] == "patient/*.rs"
    payload = token["access_token"].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["patient"] == "demo-patient-jane-doe"
    assert claims["client_id"] == "fhir-server-cli" and claims["sub"] == "demo-patient"
    refused = _cli(env, "users", "token", "demo-patient", "--scope", "user/*.rs")
    assert refused.returncode == 1 and "patient/ scopes" in refused.stderr
    unknown = _cli(env, "users", "token", "nobody")
    assert unknown.returncode == 1 and "No active account" in unknown.stderr
    assert "demo-frontdesk (front desk), demo-admin (admin)" in first.stdout
    boss = _cli(env, "users", "token", "demo-admin", "--scope", "user/*.rs")
    assert boss.returncode == 0, boss.stderr
    payload = orjson.loads(boss.stdout)["access_token"].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["role"] == "admin" and claims["sub"] == "demo-admin"
    desk = _cli(env, "users", "token", "demo-frontdesk", "--scope", "user/*.rs")
    assert desk.returncode == 0, desk.stderr
    payload = orjson.loads(desk.stdout)["access_token"].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["role"] == "frontdesk" and "fhirUser" not in claims


def test_demo_without_a_running_store_uses_one_for_its_duration(tmp_path: Path) -> None:
    env = _env(tmp_path, "fhir")
    first = _cli(env, "demo")
    assert first.returncode == 0, first.stderr
    assert "started by this command" in first.stdout
    assert embedded.running(tmp_path) is None and not (tmp_path / "embedded.json").exists()

    again = _cli(env, "demo")
    assert again.returncode == 0, again.stderr
    assert f"0 created, 0 updated, {TOTAL} unchanged" in again.stdout  # data outlived the store


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_store_says_what_to_do(tmp_path: Path) -> None:
    uri = f"mongodb://127.0.0.1:{_closed_port()}/?directConnection=true"
    env = _env(tmp_path, "fhir", FHIR_MONGODB_URI=uri)
    commands = (["demo"], ["serve", "--port", str(_closed_port())])
    running = [  # side by side: each waits out the driver's server-selection timeout
        subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for args in commands
    ]
    for process in running:
        _, err = process.communicate(timeout=60)
        stderr = err.decode()
        assert process.returncode == 1, stderr
        assert "not reachable" in stderr and "FHIR_MONGODB_URI" in stderr
        assert "fhir-server serve" in stderr
        assert "Traceback" not in stderr


def test_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    result = _cli(_env(tmp_path, "fhir", FHIR_PORT="eighty"), "serve")
    assert result.returncode == 1
    assert "FHIR_PORT" in result.stderr and "Traceback" not in result.stderr


class Serving:
    """A `fhir-server serve` subprocess with its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.log = log
        self.process = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), *args],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.1)

    def stop(self) -> int:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def test_serve_answers_and_keeps_data_across_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = _env(data_dir, "fhir")
    server = Serving(env, tmp_path / "first.log", "--demo")
    try:
        metadata = server.http.get("/fhir/metadata")
        assert metadata.status_code == 200
        assert metadata.json()["resourceType"] == "CapabilityStatement"
        practitioner = server.http.get(f"/fhir/Practitioner/{PRACTITIONER}")
        assert practitioner.status_code == 200
        assert practitioner.json()["meta"]["versionId"] == "1"
        created = server.http.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "name": [{"family": "Restart"}]},
            headers={"content-type": "application/fhir+json"},
        )
        assert created.status_code == 201, created.text

        store = embedded.running(data_dir)
        assert store is not None
        demo = _cli(env, "demo")  # while serve runs: reuses its store
        assert demo.returncode == 0, demo.stderr
        assert f"shared, pid {store.pid}" in demo.stdout

        busy = _cli(env, "serve", "--port", str(server.port))
        assert busy.returncode == 1 and "--port" in busy.stderr
    finally:
        assert server.stop() == 0
    printed = (tmp_path / "first.log").read_text()
    assert f"http://127.0.0.1:{server.port}/fhir" in printed
    assert f"Demo clinic: {TOTAL} resources" in printed
    assert embedded.running(data_dir) is None, "serve left its embedded store running"

    again = Serving(env, tmp_path / "second.log")
    try:
        practitioner = again.http.get(f"/fhir/Practitioner/{PRACTITIONER}")
        assert practitioner.status_code == 200
        assert practitioner.json()["meta"]["versionId"] == "1"
        patient = again.http.get("/fhir" + created.headers["location"].split("/fhir", 1)[1])
        assert patient.status_code == 200
        assert patient.json()["name"] == [{"family": "Restart"}]
    finally:
        assert again.stop() == 0
