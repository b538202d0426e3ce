"""`fhir-server serve` under kill -9: its children end with it, and its store comes back.

Real subprocesses on the embedded store and the embedded Redis, as a user
runs them (the `Serving` helper of the CLI tests).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from fhir_server.store import embedded
from tests.integration.test_cli import Serving, _env

pytestmark = pytest.mark.slow  # fhir-server subprocesses


def _gone(process: psutil.Process) -> bool:
    """Ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for_worker_tree(serving: Serving, timeout: float = 30.0) -> list[psutil.Process]:
    """serve's descendants once both workers (notifications with beat, exports) and their
    pools have started."""
    deadline = time.monotonic() + timeout
    while True:
        children = psutil.Process(serving.process.pid).children(recursive=True)
        celery = [c for c in children if "celery" in " ".join(c.cmdline())]
        if len(celery) >= 5 or time.monotonic() > deadline:  # 2 workers, 2 pools, beat
            return children
        time.sleep(0.2)


def test_every_child_ends_with_a_killed_serve(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    serving = Serving(_env(data_dir, "fhir"), tmp_path / "serve.log")
    children = _wait_for_worker_tree(serving)
    redis_pid = redis.Redis(unix_socket_path=str(data_dir / "redis.sock")).info("server")[
        "process_id"
    ]
    watched = [*children, psutil.Process(redis_pid)]  # redis-server daemonizes: not a child
    names = " ".join(" ".join(p.cmdline()[:3]) for p in watched)
    assert "nx-27017" in names and "celery" in names, names
    queues = {c.cmdline()[c.cmdline().index("-Q") + 1] for c in children if "-Q" in c.cmdline()}
    assert queues == {"notifications", "exports"}, queues

    serving.process.send_signal(signal.SIGKILL)
    serving.process.wait(10)
    deadline = time.monotonic() + 8
    while not all(_gone(p) for p in watched) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [(p.pid, " ".join(p.cmdline()[:3])) for p in watched if not _gone(p)]
    for pid, _ in left:  # leave nothing behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert left == []


def _answer(http: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return http.get(path, timeout=10)
    except httpx.TransportError:
        return None


def test_a_killed_store_is_restarted_and_requests_meanwhile_get_503(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    serving = Serving(_env(data_dir, "fhir"), tmp_path / "serve.log")
    try:
        for _ in range(3):
            store = embedded.running(data_dir)
            assert store is not None
            os.kill(store.pid, signal.SIGKILL)
            killed = time.monotonic()
            answers = []
            while True:
                read = _answer(serving.http, "/fhir/Patient?_count=1")
                assert read is not None
                answers.append(read)
                ready = _answer(serving.http, "/readyz")
                if ready is not None and ready.status_code == 200:
                    break
                assert time.monotonic() - killed < 5, "the store was not back within 5 s"
            recovered = time.monotonic() - killed
            assert recovered < 5
            for read in answers:
                assert read.status_code in (200, 503), read.text
                if read.status_code == 503:
                    assert read.headers["retry-after"].isdigit()
                    assert read.json()["resourceType"] == "OperationOutcome"
            again = embedded.running(data_dir)
            assert again is not None and again.pid != store.pid
            assert again.uri == store.uri  # the same port: every client reconnects by itself
    finally:
        assert serving.stop() == 0
    assert embedded.running(data_dir) is None
    assert "restarting it" in (tmp_path / "serve.log").read_text()


def test_a_zombie_in_the_pid_file_does_not_block_a_start(tmp_path: Path) -> None:
    """A killed store not yet reaped still answers a signal probe; it is not running."""
    zombie = subprocess.Popen(["sleep", "60"])
    os.kill(zombie.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (tmp_path / "embedded.pid").write_text(str(zombie.pid))
    try:
        server = embedded.start(tmp_path)
        try:
            running = embedded.running(tmp_path)
            assert server.owned and running is not None and running.pid == server.pid
        finally:
            embedded.stop(server, tmp_path)
    finally:
        zombie.wait()
