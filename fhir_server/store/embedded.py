"""The embedded MongoDB-wire server (nx-27017) for the default setup.

One server process per data directory: `serve` starts it and records its port
in `<data_dir>/embedded.json`; every other command finds that record and
connects to the same process, so two processes never open one data file.
When nothing is running, a command starts its own for its lifetime.

`serve` also supervises the server it started (`Supervisor`): killed, it is
started again on the same port within a second, so every connected client
(the API's, the worker's) reconnects by itself; requests meanwhile answer 503.
nx-27017 refuses to start while its pid file names a live process, and a
killed server that is not yet reaped (a zombie) still answers a signal
probe: the pid file is cleared when its process is gone or a zombie.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fhir_server.watchdog import is_live

log = logging.getLogger(__name__)

_RECORD = "embedded.json"
_LOCK = "embedded.lock"
_PID_FILE = "embedded.pid"
# How often the supervisor looks at the server it keeps running.
_SUPERVISE_EVERY = 0.2


class EmbeddedStoreError(RuntimeError):
    """The embedded server could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class EmbeddedServer:
    uri: str
    pid: int
    port: int
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
    if is_live(pid) and _answers(port):
        return EmbeddedServer(uri=_uri(port), pid=pid, port=port)
    return None


def _clear_stale_pid_file(data_dir: Path) -> None:
    """Remove nx-27017's pid file when the process it names is gone or a zombie."""
    pid_file = data_dir / _PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return
    if not is_live(pid):
        pid_file.unlink(missing_ok=True)


def start(data_dir: Path, *, port: int | None = None, timeout: float = 20.0) -> EmbeddedServer:
    """Reuse the running server for `data_dir`, or start one owned by the caller
    (on `port` when given: a restart keeps the address its clients know)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        existing = running(data_dir)
        if existing:
            return existing
        _clear_stale_pid_file(data_dir)
        port = port or _free_port()
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
                str(data_dir / _PID_FILE),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise EmbeddedStoreError(
                    f"The embedded store did not start (see {data_dir / 'embedded.log'}); "
                    "check that the data directory is writable, or set FHIR_MONGODB_URI."
                )
            time.sleep(0.05)
        (data_dir / _RECORD).write_text(json.dumps({"pid": process.pid, "port": port}))
        return EmbeddedServer(uri=_uri(port), pid=process.pid, port=port, process=process)


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


class Supervisor:
    """Keeps the server this process started running, on the same port, until `stop`.

    A thread looks at the server every `_SUPERVISE_EVERY` s; when it has
    exited (reaped here, so no zombie is left to confuse the next start), it
    starts it again, retrying every second while that fails, and calls
    `on_start` with each new server (the watchdog then looks after it).
    """

    def __init__(
        self,
        server: EmbeddedServer,
        data_dir: Path,
        on_start: Callable[[EmbeddedServer], None] = lambda _server: None,
    ) -> None:
        self.server = server
        self.data_dir = data_dir
        self.on_start = on_start
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(_SUPERVISE_EVERY):
            code = self._exit_code()
            if code is None:
                continue
            log.warning(
                "The embedded store (pid %d) exited with %s; restarting it", self.server.pid, code
            )
            while not self._stopping.is_set():
                try:
                    self.server = start(self.data_dir, port=self.server.port)
                except EmbeddedStoreError:
                    log.error("The embedded store did not restart; trying again in 1 s")
                    self._stopping.wait(1.0)
                    continue
                self.restarts += 1
                self.on_start(self.server)
                break

    def _exit_code(self) -> int | str | None:
        """None while the server runs; else how it ended."""
        process = self.server.process
        if process is None:  # another command's server filled a gap: it runs while it answers
            return None if running(self.data_dir) else "gone"
        return process.poll()

    def stop(self) -> None:
        """Stop supervising, then stop the server."""
        self._stopping.set()
        self._thread.join()
        stop(self.server, self.data_dir)
