"""Crash benchmark: booking clients under kill -9, then every invariant counted.

A real `fhir-server serve --demo` (embedded store, embedded Redis, worker and
beat) in a temporary directory. `--clients` threads book (with an
Idempotency-Key, retried with the same key until answered), cancel and
reschedule for `--seconds`, while every `--every` seconds one kill -9 of the
next kind in `--kinds` lands:

- `api`: the serve process alone (its children must end by themselves);
- `server`: serve's process group;
- `store`: the embedded store alone (serve must restart it within 5 s);
- `all`: every process of the server at once (serve, store, worker, beat, Redis).

`--every 0` kills nothing, and `--workers N` adds N `fhir-server worker`
processes (as production scales workers): the no-fault run of many workers.
After an `api`, `server` or `all` kill, what still runs of the old server
5 s later is an orphan (counted, then killed), and serve is started again.
When the load ends, the server gets `--settle` seconds to recover and send,
then the store is read directly and each invariant's violations are printed
(all zero is the target).

Minutes long, so `python -m benchmarks` runs it only with `--crash`; alone:
`.venv/bin/python -m benchmarks.bench_crash --clients 8 --seconds 240 --every 20`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from pymongo import MongoClient

CLI = str(Path(sys.executable).with_name("fhir-server"))
JSON = "application/fhir+json"
KEY_SYSTEM = "urn:fhir-server:bench-crash"
ACTIVE = {"booked", "pending", "arrived", "checked-in", "proposed"}
LEASE = 60  # FHIR_NOTIFY_LEASE's default: a claim older than this is stuck
ORPHAN_WAIT = 5.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the server ----------------------------------------------------------------


class Server:
    """`fhir-server serve` in `data_dir`, started again after each kill."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
        self.env.update(
            FHIR_DATA_DIR=str(data_dir),
            FHIR_DATABASE="bench",
            FHIR_AUTH_ENABLED="false",
            FHIR_LOG_LEVEL="WARNING",
            # The load comes from one address: the API's rate limits would answer most of it 429.
            FHIR_RATE_LIMIT_ADDRESS_PER_MINUTE=str(10**9),
            FHIR_RATE_LIMIT_TOKEN_PER_MINUTE=str(10**9),
        )
        self.log = (data_dir.parent / "serve.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    def start(self, *args: str) -> float:
        """Start serve and wait until /readyz answers 200; the seconds it took."""
        began = time.monotonic()
        self.process = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), *args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal or a service runs it
        )
        self.wait_ready(began, 300)
        return time.monotonic() - began

    def wait_ready(self, began: float, timeout: float) -> float:
        while time.monotonic() - began < timeout:
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/readyz").status_code == 200:
                    return time.monotonic() - began
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def tree(self) -> list[psutil.Process]:
        """Every process of the server: serve's descendants and the daemonized Redis."""
        assert self.process is not None
        found: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(self.process.pid)
            found = [top, *top.children(recursive=True)]
        with contextlib.suppress(redis.RedisError, psutil.Error):
            sock = str(self.data_dir / "redis.sock")
            pid = redis.Redis(unix_socket_path=sock, socket_timeout=2).info("server")["process_id"]
            found.append(psutil.Process(pid))
        return found

    def store_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads((self.data_dir / "embedded.json").read_text())["pid"])
        return None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
    return out


# -- the kills -----------------------------------------------------------------


@dataclass
class Kills:
    done: Counter[str] = field(default_factory=Counter)
    orphans: int = 0
    store_recovery: list[float] = field(default_factory=list)
    restart: list[float] = field(default_factory=list)


def kill(server: Server, kind: str, kills: Kills) -> None:
    assert server.process is not None
    kills.done[kind] += 1
    if kind == "store":
        pid = server.store_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        time.sleep(0.2)
        kills.store_recovery.append(server.wait_ready(began, 60))
        return
    before = server.tree()
    if kind == "api":
        server.process.send_signal(signal.SIGKILL)
    elif kind == "server":
        os.killpg(server.process.pid, signal.SIGKILL)
    else:
        for process in before:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
    server.process.wait()
    time.sleep(ORPHAN_WAIT)
    left = _alive(before)
    kills.orphans += len(left)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    kills.restart.append(server.start())


# -- the clients ---------------------------------------------------------------


@dataclass
class Booking:
    key: str
    statuses: list[int] = field(default_factory=list)
    appointment: str | None = None


@dataclass
class Record:
    bookings: list[Booking] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    missing_retry_after: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client(threading.Thread):
    def __init__(self, number: int, server: Server, record: Record, until: float) -> None:
        super().__init__(daemon=True)
        self.number = number
        self.server = server
        self.record = record
        self.until = until
        self.random = random.Random(number)
        self.booked: list[str] = []
        self.patient = ""

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """One request; None on a transport error (server down). Every answer is counted."""
        headers = {"content-type": JSON, "x-actor-role": "frontdesk", **kw.pop("headers", {})}
        try:
            answer = self.server.http.request(method, path, headers=headers, timeout=15, **kw)
        except httpx.HTTPError:
            time.sleep(0.5)
            return None
        with self.record.lock:
            self.record.statuses[answer.status_code] += 1
            if answer.status_code == 503 and "retry-after" not in answer.headers:
                self.record.missing_retry_after += 1
        if answer.status_code == 503:
            time.sleep(0.5)
        return answer

    def until_answered(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = self.request(method, path, **dict(kw))
            if answer is not None and answer.status_code not in (500, 502, 503, 504):
                return answer
        return None

    def run(self) -> None:
        created = self.until_answered(
            "POST",
            "/fhir/Patient",
            json={
                "resourceType": "Patient",
                "name": [{"family": f"Crash{self.number}"}],
                "telecom": [{"system": "email", "value": f"crash{self.number}@bench.example"}],
            },
        )
        if created is None or created.status_code != 201:
            return
        self.patient = created.json()["id"]
        while time.monotonic() < self.until:
            choice = self.random.random()
            if not self.booked or choice < 0.5:
                self.book()
            elif choice < 0.75:
                self.cancel(self.booked.pop(self.random.randrange(len(self.booked))))
            else:
                self.reschedule(self.random.choice(self.booked))

    def free_slot(self) -> dict[str, Any] | None:
        start = _instant(datetime.now(UTC) + timedelta(days=2))
        found = self.request("GET", f"/fhir/Slot?status=free&start=ge{start}&_count=40")
        if found is None or found.status_code != 200:
            return None
        slots = [e["resource"] for e in found.json().get("entry", [])]
        return self.random.choice(slots) if slots else None

    def book(self) -> None:
        slot = self.free_slot()
        if slot is None:
            return
        booking = Booking(str(uuid.uuid4()))
        with self.record.lock:
            self.record.bookings.append(booking)
        body = {
            "resourceType": "Appointment",
            "status": "booked",
            "identifier": [{"system": KEY_SYSTEM, "value": booking.key}],
            "start": slot["start"],
            "end": slot["end"],
            "slot": [{"reference": f"Slot/{slot['id']}"}],
            "participant": [
                {"actor": {"reference": f"Patient/{self.patient}"}, "status": "accepted"}
            ],
        }
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = self.request(
                "POST", "/fhir/Appointment", json=body, headers={"idempotency-key": booking.key}
            )
            if answer is None:
                continue
            booking.statuses.append(answer.status_code)
            if answer.status_code in (200, 201):
                booking.appointment = answer.json()["id"]
                self.booked.append(booking.appointment)
                return
            if answer.status_code < 500:
                return

    def _current(self, aid: str) -> dict[str, Any] | None:
        answer = self.until_answered("GET", f"/fhir/Appointment/{aid}")
        return answer.json() if answer is not None and answer.status_code == 200 else None

    def cancel(self, aid: str) -> None:
        for _ in range(5):
            current = self._current(aid)
            if current is None or current.get("status") not in ACTIVE:
                return
            body = {**current, "status": "cancelled", "cancelationReason": {"text": "bench"}}
            answer = self.until_answered(
                "PUT",
                f"/fhir/Appointment/{aid}",
                json=body,
                headers={"if-match": f'W/"{current["meta"]["versionId"]}"'},
            )
            if answer is not None and answer.status_code in (200, 201):
                return

    def reschedule(self, aid: str) -> None:
        slot = self.free_slot()
        current = self._current(aid)
        if slot is None or current is None or current.get("status") not in ACTIVE:
            return
        body = {
            **current,
            "start": slot["start"],
            "end": slot["end"],
            "slot": [{"reference": f"Slot/{slot['id']}"}],
        }
        self.until_answered(
            "PUT",
            f"/fhir/Appointment/{aid}",
            json=body,
            headers={"if-match": f'W/"{current["meta"]["versionId"]}"'},
        )


# -- the invariants ------------------------------------------------------------


def _bodies(db: Any, rtype: str) -> dict[str, dict[str, Any]]:
    out = {}
    for row in db[rtype].find({"deleted": False}):
        text = row.get("body")
        body = json.loads(text) if isinstance(text, str) else row.get("resource")
        if body is not None:
            out[row["_id"]] = body
    return out


def _history_key(message: dict[str, Any]) -> str:
    """The history key (`Appointment/id/version`) of the appointment version a message is about."""
    for ref in message.get("about", []):
        parts = str(ref.get("reference", "")).split("/")
        if parts[0] == "Appointment" and len(parts) == 4:
            return f"{parts[0]}/{parts[1]}/{parts[3]}"
    return ""


def invariants(uri: str, record: Record) -> dict[str, int]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10000)
    db = client["bench"]
    appointments = _bodies(db, "Appointment")
    slots = _bodies(db, "Slot")
    holders: dict[str, list[str]] = {}
    for aid, appt in appointments.items():
        if appt.get("status") in ACTIVE:
            for ref in appt.get("slot", []):
                holders.setdefault(ref["reference"].split("/")[-1], []).append(aid)
    counts: dict[str, int] = {}
    counts["Slot booked twice"] = sum(1 for ids in holders.values() if len(ids) > 1)
    counts["busy Slot without active Appointment"] = sum(
        1 for sid, s in slots.items() if s.get("status") == "busy" and sid not in holders
    )
    out_of_step = gaps = 0
    for rtype in ("Appointment", "Slot"):
        versions: dict[str, set[int]] = {}
        for row in db["history"].find({"type": rtype}, {"id": 1, "version": 1}):
            versions.setdefault(row["id"], set()).add(int(row["version"]))
        for row in db[rtype].find({}, {"version": 1}):
            seen = versions.get(row["_id"], set())
            if not seen or max(seen) != row["version"]:
                out_of_step += 1
            if seen and seen != set(range(1, max(seen) + 1)):
                gaps += 1
    counts["current version not the latest in history"] = out_of_step
    counts["history with gaps"] = gaps
    by_key: dict[str, list[str]] = {}
    for aid, appt in appointments.items():
        for ident in appt.get("identifier", []):
            if ident.get("system") == KEY_SYSTEM:
                by_key.setdefault(ident["value"], []).append(aid)
    counts["Idempotency-Key with two appointments"] = sum(
        1 for ids in by_key.values() if len(ids) > 1
    )
    counts["retry answered 409 although its booking landed"] = sum(
        1
        for b in record.bookings
        if b.appointment is None and b.statuses and b.statuses[-1] == 409 and b.key in by_key
    )
    cutoff = (datetime.now(UTC) - timedelta(seconds=LEASE)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    messages = _bodies(db, "Communication")
    rows = {r["_id"]: r for r in db["Communication"].find({}, {"updated": 1})}
    counts["messages in-progress past their lease"] = sum(
        1
        for cid, m in messages.items()
        if m.get("status") == "in-progress" and rows[cid]["updated"] < cutoff
    )
    counts["messages not settled"] = sum(
        1 for m in messages.values() if m.get("status") in ("preparation", "in-progress")
    )
    unreadable = [
        _history_key(m)
        for m in messages.values()
        if m.get("status") == "not-done"
        and "cannot be read" in str(m.get("statusReason", {}).get("text", ""))
    ]
    existing = {r["_id"] for r in db["history"].find({"_id": {"$in": unreadable}}, {"_id": 1})}
    counts["messages not-done as unreadable although their version exists"] = sum(
        1 for key in unreadable if key in existing
    )
    about = set()
    for m in messages.values():
        for ref in m.get("about", []):
            match = re.match(r"Appointment/([^/]+)", str(ref.get("reference", "")))
            if match:
                about.add(match.group(1))
    acknowledged = [b.appointment for b in record.bookings if b.appointment]
    counts["acknowledged bookings without Communications"] = sum(
        1 for aid in acknowledged if aid not in about
    )
    counts["_messages"] = len(messages)
    counts["_acknowledged bookings"] = len(acknowledged)
    client.close()
    return counts


# -- main ----------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="crash", dir="/tmp"))
    server = Server(folder / "data")
    print(f"bench_crash: {args.clients} clients, {args.workers} extra workers, {args.seconds} s, "
          f"a kill every {args.every} s ({args.kinds}), then {args.settle} s to settle; "
          f"work in {folder}")  # fmt: skip
    server.start("--demo")
    workers = [
        subprocess.Popen([CLI, "worker", "--concurrency", "1", "--loglevel", "WARNING"],
                         env=server.env, stdout=server.log, stderr=subprocess.STDOUT)
        for _ in range(args.workers)
    ]  # fmt: skip
    record, kills = Record(), Kills()
    until = time.monotonic() + args.seconds
    clients = [Client(n, server, record, until) for n in range(args.clients)]
    for client in clients:
        client.start()
    kinds = args.kinds.split(",")
    try:
        next_kill = time.monotonic() + args.every if args.every > 0 else until
        while time.monotonic() < until:
            time.sleep(max(0.0, min(next_kill, until) - time.monotonic()))
            if time.monotonic() >= next_kill and time.monotonic() < until:
                kill(server, kinds[sum(kills.done.values()) % len(kinds)], kills)
                next_kill = time.monotonic() + args.every
        for client in clients:
            client.join(180)
        time.sleep(args.settle)
        store = json.loads((server.data_dir / "embedded.json").read_text())
        counts = invariants(f"mongodb://127.0.0.1:{store['port']}/?directConnection=true", record)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(60)
        server.stop()
    print(f"  kills: {dict(kills.done)}; orphans after a kill: {kills.orphans}")
    if kills.store_recovery:
        print(f"  store kill to /readyz 200: max {max(kills.store_recovery):.1f} s")
    if kills.restart:
        print(f"  serve restart to /readyz 200: max {max(kills.restart):.1f} s")
    statuses = dict(sorted(record.statuses.items()))
    print(f"  answers by status: {statuses}; 503 without Retry-After: {record.missing_retry_after}")
    acknowledged, messages = counts["_acknowledged bookings"], counts["_messages"]
    print(f"  bookings tried: {len(record.bookings)}, acknowledged: {acknowledged}; "
          f"messages: {messages}")  # fmt: skip
    if not acknowledged:
        print("  NO BOOKING WAS ACKNOWLEDGED: the counts below checked nothing (see serve.log)")
    for name, value in counts.items():
        if not name.startswith("_"):
            print(f"  {name}: {value}")
    errors = sum(n for status, n in record.statuses.items() if status >= 500 and status != 503)
    print(f"  5xx other than 503: {errors}")
    print(f"  orphan processes: {kills.orphans}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_crash", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0, help="booking load duration")
    parser.add_argument("--every", type=float, default=12.0, help="seconds between kills (0: none)")
    parser.add_argument("--workers", type=int, default=0, help="extra `fhir-server worker`s")
    parser.add_argument("--kinds", default="api,store,server,all")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to recover after")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """The defaults (short) unless `argv` says otherwise (`python -m benchmarks` gives none)."""
    run(parse(argv or []))


if __name__ == "__main__":
    main(sys.argv[1:])
