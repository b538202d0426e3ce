"""The embedded MongoDB-wire server (nx-27017) for the default setup.

One server process per data directory: `serve` starts it and records its port
in `<data_dir>/embedded.json`; every other command finds that record and
connects to the same process, so two processes never open one data file.
When nothing is running, a command starts its own for its lifetime.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_RECORD = "embedded.json"
_LOCK = "embedded.lock"


class EmbeddedStoreError(RuntimeError):
    """The embedded server could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class EmbeddedServer:
    uri: str
    pid: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def _executable() -> str:
    beside = Path(sys.executable).with_name("nx-27017")
    found = str(beside) if beside.exists() else shutil.which("nx-27017")
    if not found:
        raise EmbeddedStoreError(
            "The embedded store program 'nx-27017' is not installed; run 'make run' "
            "(or pip install -e .) to install the project, or set FHIR_MONGODB_URI."
        )
    return found


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with (data_dir / _LOCK).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def running(data_dir: Path) -> EmbeddedServer | None:
    """The server already serving this data directory, if any."""
    record = data_dir / _RECORD
    if not record.exists():
        return None
    try:
        info = json.loads(record.read_text())
        pid, port = int(info["pid"]), int(info["port"])
    except (ValueError, KeyError, OSError):
        return None
    if _alive(pid) and _answers(port):
        return EmbeddedServer(uri=_uri(port), pid=pid)
    return None


def start(data_dir: Path, *, timeout: float = 20.0) -> EmbeddedServer:
    """Reuse the running server for `data_dir`, or start one owned by the caller."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        existing = running(data_dir)
        if existing:
            return existing
        port = _free_port()
        db_dir = data_dir / "db"
        db_dir.mkdir(exist_ok=True)
        process = subprocess.Popen(
            [
                _executable(),
                "--data-dir",
                str(db_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-file",
                str(data_dir / "embedded.log"),
                "--pid-file",
                str(data_dir / "embedded.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise EmbeddedStoreError(
                    f"The embedded store did not start (see {data_dir / 'embedded.log'}); "
                    "check that the data directory is writable, or set FHIR_MONGODB_URI."
                )
            time.sleep(0.05)
        (data_dir / _RECORD).write_text(json.dumps({"pid": process.pid, "port": port}))
        return EmbeddedServer(uri=_uri(port), pid=process.pid, process=process)


def stop(server: EmbeddedServer, data_dir: Path) -> None:
    """Stop a server this process started; leave a shared one alone."""
    if server.process is None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    (data_dir / _RECORD).unlink(missing_ok=True)
