"""One beat per broker: a lock in Redis, so no periodic job fires twice.

`serve` runs a beat inside its worker, and production runs `fhir-server beat`;
a second API replica started the default way, or a beat started by hand next
to one, would fire every minute job again. So beat's scheduler is
`LockedScheduler`:

- before it opens its schedule file it takes the lock (`SET key token NX PX`),
  waiting as long as another beat holds it (one log line says so), so two
  beats of one data directory never open the same file either;
- every tick renews the lock (compare-and-`PEXPIRE`, at least every
  `RENEW_EVERY` s) and fires jobs only while it holds it; a holder that cannot
  renew (Redis down longer than `TTL`, or the lock expired) stops firing and
  tries to take the lock again on the following ticks;
- a beat that stops hands the lock back; one that is killed leaves it to
  expire after `TTL` s, and the waiting beat takes over then.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

import redis
from celery.beat import PersistentScheduler

log = logging.getLogger(__name__)

KEY = "fhir-server:beat-lock"
TTL = 30.0
RENEW_EVERY = 5.0
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501


def redis_for(broker_url: str) -> redis.Redis:
    """A Redis client for the broker's URL (`redis+socket://` is the embedded Redis's socket)."""
    if broker_url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=broker_url.removeprefix("redis+socket://"))
    return redis.Redis.from_url(broker_url)


class BeatLock:
    """The lock itself: `acquire`, `renew`, `release`, each one Redis command."""

    def __init__(self, client: redis.Redis, ttl: float = TTL) -> None:
        self.client = client
        self.ttl_ms = int(ttl * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        return bool(self.client.set(KEY, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, KEY, self.token, self.ttl_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, KEY, self.token)

    def holder(self) -> str:
        """Who holds the lock, for the log line of a waiting beat."""
        try:
            value = self.client.get(KEY)
        except redis.RedisError:
            return "unknown: the broker does not answer"
        return value.decode() if isinstance(value, bytes) else "nobody"


class LockedScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery beat's persistent scheduler, firing only while it holds the beat lock."""

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        self.lock = BeatLock(redis_for(app.conf.broker_url))
        self.holding = False
        self.renewed = 0.0
        if not kwargs.get("lazy"):
            self._wait_for_lock()
        super().__init__(app, *args, **kwargs)

    def _wait_for_lock(self) -> None:
        said = False
        while not self._try(self.lock.acquire):
            if not said:
                log.warning(
                    "Another beat (%s) holds this broker's beat lock; waiting to take over "
                    "when it stops",
                    self.lock.holder(),
                )
                said = True
            time.sleep(RENEW_EVERY / 5)
        log.info("This beat (%s) holds the broker's beat lock", self.lock.token)

    def _try(self, step: Any) -> bool:
        """Run a lock step; whether this beat holds the lock afterwards."""
        try:
            held = bool(step())
        except redis.RedisError:
            held = self.holding and time.monotonic() - self.renewed < self.lock.ttl_ms / 1000
        else:
            if held:
                self.renewed = time.monotonic()
        if self.holding and not held:
            log.warning("This beat lost the broker's beat lock; it fires nothing until it is back")
        self.holding = held
        return held

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if time.monotonic() - self.renewed >= 1.0 or not self.holding:
            self._try(self.lock.renew if self.holding else self.lock.acquire)
        if not self.holding:
            return RENEW_EVERY / 5
        return min(float(super().tick(*args, **kwargs)), RENEW_EVERY)

    def close(self) -> None:
        super().close()
        if self.holding:
            try:
                self.lock.release()
            except redis.RedisError:
                log.warning("The beat lock could not be handed back; it expires by itself")
            self.holding = False
