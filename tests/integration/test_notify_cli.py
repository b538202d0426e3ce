"""`fhir-server worker` and `fhir-server beat` as their own processes, in the default setup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.integration.notify_support import short_tmp, wait_until

pytestmark = pytest.mark.slow  # fhir-server subprocesses

CLI = Path(sys.executable).parent / "fhir-server"


def _answers(socket_path: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_a_standalone_process_stops_the_embedded_redis_it_started(
    command: str, mongo_uri: str
) -> None:
    data_dir = short_tmp()
    env = {k: v for k, v in os.environ.items() if k != "FHIR_REDIS_URL"}
    env |= {"FHIR_DATA_DIR": str(data_dir), "FHIR_MONGODB_URI": mongo_uri}
    argv = [str(CLI), command, "--loglevel=WARNING"]
    if command == "worker":
        argv.append("--concurrency=1")
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(data_dir / "redis.sock"), timeout=30, every=0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) is not None
    finally:
        if process.poll() is None:
            process.kill()
    assert not _answers(data_dir / "redis.sock")


def test_any_process_that_started_the_embedded_redis_stops_it_at_exit() -> None:
    data_dir = short_tmp()
    # An API process that published once, its connection (like Celery's pool) still open.
    script = (
        "import sys, redis\n"
        "from pathlib import Path\n"
        "from fhir_server.notifications import celery_app\n"
        "url = celery_app.embedded_redis_url(Path(sys.argv[1]))\n"
        "client = redis.Redis(unix_socket_path=url.removeprefix('redis+socket://'))\n"
        "assert client.ping()\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(data_dir)], timeout=60, check=False)
    assert done.returncode == 0
    assert not _answers(data_dir / "redis.sock")
