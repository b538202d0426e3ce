"""A lean HTTP/1.1 keep-alive load generator on raw asyncio streams.

The load generator shares the machine's cores with the server, so it does the
least work it can per request: pre-built request bytes, one status-line and
Content-Length parse, no HTTP library.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

RequestFactory = Callable[[int, int], bytes]
"""(client number, request number) -> the raw request bytes."""
CpuProbe = Callable[[], tuple[float, ...]]
"""CPU seconds used so far by each process of interest (server, store)."""


def request(method: str, path: str, body: bytes = b"", content_type: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if body:
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu: tuple[float, ...] = ()
    """CPU seconds each probed process used during the measurement."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        """Latency in milliseconds at quantile q (0-1)."""
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=1000)[round(q * 1000) - 1] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<8} {self.rate:6.0f} req/s  p50 {self.percentile(0.5):6.2f} ms  "
            f"p99 {self.percentile(0.99):6.2f} ms  errors {self.errors}"
        )


def cpu_ms_per_request(runs: list[Result]) -> tuple[float, ...]:
    """CPU milliseconds per request of each probed process, pooled over several runs."""
    requests = max(sum(r.requests for r in runs), 1)
    return tuple(1000 * sum(used) / requests for used in zip(*(r.cpu for r in runs), strict=True))


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def run(
    name: str,
    host: str,
    port: int,
    make: RequestFactory,
    *,
    concurrency: int = 32,
    seconds: float = 5.0,
    warmup: float = 1.0,
    expect: int = 200,
    cpu: CpuProbe | None = None,
) -> Result:
    """Hit the server from `concurrency` keep-alive connections; measure after the warm-up."""
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds
    latencies: list[float] = []
    errors = 0

    async def client(number: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        sent = 0
        try:
            while True:
                raw = make(number, sent)
                sent += 1
                began = time.perf_counter()
                if began >= stop_at:
                    return
                status = await _exchange(reader, writer, raw)
                if began >= measure_from:
                    latencies.append(time.perf_counter() - began)
                    if status != expect:
                        errors += 1
        finally:
            writer.close()

    async def meter() -> tuple[float, ...]:
        if cpu is None:
            return ()
        await asyncio.sleep(warmup)
        before = cpu()
        await asyncio.sleep(seconds)
        return tuple(b - a for a, b in zip(before, cpu(), strict=True))

    metering = asyncio.ensure_future(meter())
    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return Result(name, len(latencies), errors, seconds, latencies, await metering)


def cycle(requests: list[bytes]) -> RequestFactory:
    """Spread the clients over a list of prepared requests."""

    def make(client: int, number: int) -> bytes:
        return requests[(client * 7919 + number * 31) % len(requests)]

    return make


Plan = list[tuple[str, RequestFactory, int]]
"""(scenario, its requests, the status each must answer)."""
Measured = dict[str, tuple[Result, tuple[float, ...]]]
"""Scenario -> (its median round, CPU ms per request of each probed process)."""


async def interleaved(
    port: int,
    plan: Plan,
    *,
    rounds: int,
    seconds: float,
    concurrency: int,
    cpu: CpuProbe,
) -> dict[str, list[Result]]:
    """Every scenario once per round, in turn (a, b, c, a, b, c, ...), so drift on the
    shared machine falls on all of them alike; each scenario's rounds."""
    out: dict[str, list[Result]] = {name: [] for name, _, _ in plan}
    for _ in range(rounds):
        for name, make, expect in plan:
            result = await run(
                name,
                "127.0.0.1",
                port,
                make,
                concurrency=concurrency,
                seconds=seconds,
                expect=expect,
                cpu=cpu,
            )
            out[name].append(result)
    return out


def medians(rounds: dict[str, list[Result]], indent: str = "  ") -> Measured:
    """Each scenario's median round and pooled CPU cost per request, printed as they come."""
    measured: Measured = {}
    for name, runs in rounds.items():
        runs.sort(key=lambda r: r.rate)
        median, cost = runs[len(runs) // 2], cpu_ms_per_request(runs)
        measured[name] = (median, cost)
        print(f"{indent}{median.line()}  (rounds {runs[0].rate:.0f}-{runs[-1].rate:.0f})")
        print(
            f"{indent}         CPU ms/request: server {cost[0]:.2f}, store {cost[1]:.2f}, "
            f"load generator {cost[2]:.2f}",
            flush=True,
        )
    return measured
