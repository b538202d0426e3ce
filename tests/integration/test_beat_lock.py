"""One beat per broker: the lock in Redis, and two real `fhir-server beat` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from fhir_server.notifications import celery_app
from fhir_server.notifications.beat_lock import KEY, BeatLock
from tests.integration.notify_support import short_tmp, start_redis, wait_until

CLI = str(Path(sys.executable).with_name("fhir-server"))


@pytest.fixture
def broker() -> Iterator[tuple[Any, str, Path]]:
    folder = short_tmp()
    server, url = start_redis(folder)
    try:
        yield server, url, folder
    finally:
        celery_app.shut_down_redis(server)


def test_the_lock_has_one_holder_and_expires_when_not_renewed(
    broker: tuple[Any, str, Path],
) -> None:
    server, _, _ = broker
    client = redis.Redis(unix_socket_path=server.socket_file)
    first, second = BeatLock(client, ttl=1.0), BeatLock(client, ttl=1.0)
    assert first.acquire()
    assert not second.acquire()
    assert first.renew() and second.holder() == first.token
    second.release()  # not the holder's: changes nothing
    assert client.get(KEY) == first.token.encode()
    time.sleep(1.2)  # the holder died: nobody renewed
    assert second.acquire()
    assert not first.renew()
    second.release()
    assert client.get(KEY) is None


class Beat:
    def __init__(self, url: str, data_dir: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
        env.update(FHIR_REDIS_URL=url, FHIR_DATA_DIR=str(data_dir), FHIR_LOG_LEVEL="INFO")
        self.log = log
        self.process = subprocess.Popen(
            [CLI, "beat", "--loglevel=INFO"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def says(self, text: str) -> bool:
        return text in self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.mark.slow  # two fhir-server beat processes
def test_a_second_beat_waits_and_no_job_fires_twice(broker: tuple[Any, str, Path]) -> None:
    server, url, folder = broker
    client = redis.Redis(unix_socket_path=server.socket_file)
    data_dir = folder / "data"  # one data directory: the waiting beat must not open its schedule
    first = Beat(url, data_dir, folder / "first.log")
    second = None
    try:
        wait_until(lambda: first.says("holds the broker's beat lock"), timeout=60)
        second = Beat(url, data_dir, folder / "second.log")
        wait_until(lambda: second.says("holds this broker's beat lock; waiting"), timeout=60)
        # The relay job runs every 30 s: after one period, one beat has published it once.
        wait_until(lambda: client.llen("notifications") >= 1, timeout=45)
        time.sleep(3)
        assert client.llen("notifications") == 1
        assert not second.says("holds the broker's beat lock")

        first.stop()  # hands the lock back: the waiting beat takes over at once
        wait_until(lambda: second.says("holds the broker's beat lock"), timeout=15)
    finally:
        first.stop()
        if second is not None:
            second.stop()
