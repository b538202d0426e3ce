"""The audit journal: AuditEvents on local disk before the answer leaves, stored later.

Why a file and not the store (measured by `benchmarks/bench_audit.py`): one
`write(2)` of a JSON line to a file opened `O_APPEND` costs a few
microseconds, where inserting the event into the store before answering costs
a round trip and a write (a large share of a read's own time on the embedded
store), and an insert after answering (a background task, a queue in memory)
is lost when the process dies right after the answer. Once `write` returns,
the line is in the kernel's page cache: it survives the process being killed
(not a power cut; the relay stores lines within `RELAY_SECONDS`).

Each process appends to its own file, `<journal dir>/<random>.jsonl`, and
holds an exclusive `flock` on it while it lives. The relay
(`audit.relay`) moves complete lines into the store and remembers how far it
got; a file whose lock can be taken belongs to a process that died, and the
next relay of any process on this data directory stores its lines and
deletes it. Lines carry the event's id, so a line stored twice is one row.

Everything here runs on the event loop's thread: appends and relay steps
never interleave inside a call.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("fhir_server.audit")

# A fully relayed file larger than this is replaced by a fresh one.
ROTATE_BYTES = 4 * 1024 * 1024
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Batch:
    """Complete journal lines read from one file, and where they end."""

    path: Path
    events: list[dict[str, Any]]
    end: int


def _lines(raw: bytes) -> tuple[list[dict[str, Any]], int]:
    """The events of the complete lines in `raw`, and how many bytes they take."""
    end = raw.rfind(b"\n") + 1
    events = []
    for line in raw[:end].splitlines():
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.error("skipped an unreadable audit journal line")
    return events, end


def _read_from(path: Path, offset: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read()


class Journal:
    """This process's journal file: `append` on the request path, `pending`/`done` for the relay."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._open()

    def _open(self) -> None:
        self.path = self.directory / f"{uuid.uuid4().hex}{SUFFIX}"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._stored = 0

    def append(self, event: dict[str, Any]) -> None:
        """Journal one event: when this returns, the process may die without losing it."""
        line = orjson.dumps(event) + b"\n"
        written = os.write(self._fd, line)
        while written < len(line):  # a regular file takes it whole, short of a full disk
            written += os.write(self._fd, line[written:])

    def pending(self) -> Batch:
        """This process's lines not yet stored."""
        if self._stored >= self._size():
            return Batch(self.path, [], self._stored)
        events, length = _lines(_read_from(self.path, self._stored))
        return Batch(self.path, events, self._stored + length)

    def done(self, batch: Batch) -> None:
        """`batch` (from `pending`) is stored; start a new file when this one has grown large."""
        self._stored = batch.end
        if self._stored >= ROTATE_BYTES and self._stored >= self._size():
            self.close()
            self._open()

    def _size(self) -> int:
        return os.fstat(self._fd).st_size

    def orphans(self) -> Iterator[tuple[Batch, int]]:
        """Files of processes that died (their lock is free), each with its lock held open:
        the caller stores the batch, then passes the descriptor to `forget`."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # relayed by another process meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # its process is alive and relays it itself
                continue
            events, end = _lines(_read_from(path, 0))
            yield Batch(path, events, end), fd

    @staticmethod
    def forget(batch: Batch, fd: int) -> None:
        """A dead process's file is stored: remove it (a cut last line is lost with it)."""
        with contextlib.suppress(FileNotFoundError):
            batch.path.unlink()
        os.close(fd)

    @staticmethod
    def release(fd: int) -> None:
        """A dead process's file could not be stored now: leave it for a later relay."""
        os.close(fd)

    def close(self) -> None:
        """Remove the file when everything in it is stored, and release it."""
        if self._stored >= self._size():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)
