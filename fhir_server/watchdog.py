"""Children that die with `serve`, whatever kills it (SIGKILL included).

`serve` runs an embedded store, an embedded Redis and a Celery worker (with
beat inside it). A parent killed with SIGKILL runs no `finally`, so these
would live on as orphans: several beats firing the minute jobs, a store
holding the data files. The Linux parent-death signal does not reach them
all (redis-server daemonizes, and a worker's pool and beat are grandchildren),
so one small watchdog process does it for every kind:

- `serve` starts `python -m fhir_server.watchdog` in its own session (a kill of
  serve's process group leaves it alive) with a pipe on its standard input,
  and writes one line per process to look after: its pid, its start time (so
  a recycled pid is never killed) and whether to signal its whole process
  group (the worker's pool and beat) or the process alone;
- when the pipe reaches end of file (the parent exited, however), the
  watchdog sends SIGTERM to each, waits `GRACE` seconds, sends SIGKILL to what
  is left, and exits. A normal `serve` exit has stopped them all by then, so
  it finds nothing to do.

Nothing else holds the pipe's write end: Python opens pipes non-inheritable,
so the children `serve` starts never keep it open.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)
GRACE = 3.0


@dataclass(frozen=True)
class Watched:
    pid: int
    started: str  # field 22 of /proc/PID/stat: tells a recycled pid apart
    group: bool

    def line(self) -> str:
        return f"{self.pid} {self.started} {'group' if self.group else 'process'}\n"

    @classmethod
    def parse(cls, line: str) -> Watched | None:
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        return cls(int(parts[0]), parts[1], parts[2] == "group")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (None: no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("-" where /proc is missing)."""
    fields = _stat(pid)
    return fields[19] if fields else "-"


def is_live(pid: int) -> bool:
    """Whether `pid` is a running process: a zombie (killed, not yet reaped) is not."""
    fields = _stat(pid)
    if fields is not None:
        return fields[0] != "Z"
    if Path("/proc/self/stat").exists():
        return False  # /proc works and has no such process
    try:  # no /proc (not Linux): the signal probe, which counts a zombie as live
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(item: Watched, signum: int) -> bool:
    """Send `signum`; False when the process is gone (or its pid was reused)."""
    if start_time(item.pid) != item.started:
        return False
    try:
        if item.group:
            os.killpg(item.pid, signum)
        else:
            os.kill(item.pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_live(item: Watched) -> bool:
    """Whether any running process is left in the group led by `item` (or the process)."""
    if not item.group:
        return start_time(item.pid) == item.started and is_live(item.pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] != "Z" and fields[2] == str(item.pid):
                return True
    return False


def end_all(watched: list[Watched], grace: float = GRACE) -> None:
    """SIGTERM each, SIGKILL whatever still runs after `grace` seconds."""
    signalled = [item for item in watched if _signal(item, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while signalled and time.monotonic() < deadline:
        signalled = [item for item in signalled if _group_live(item)]
        time.sleep(0.05)
    for item in signalled:
        _signal(item, signal.SIGKILL)


def main() -> None:
    """Read lines until the parent's end of the pipe closes, then end what they name."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl+C is the parent's to handle
    watched = [item for line in sys.stdin if (item := Watched.parse(line))]
    end_all(watched)


class Watchdog:
    """The parent's side: start the watchdog, then `watch` each child it starts."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fhir_server.watchdog"],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdin is not None
        self._pipe: IO[str] = self.process.stdin

    def watch(self, pid: int, *, group: bool = False) -> None:
        """Have `pid` (with its process group when `group`) ended when this process ends."""
        try:
            self._pipe.write(Watched(pid, start_time(pid), group).line())
            self._pipe.flush()
        except OSError:  # the watchdog itself was killed: the child is stopped at exit only
            log.warning("The watchdog is gone; process %d is not looked after", pid)

    def close(self) -> None:
        """The parent is done (its children already stopped): let the watchdog exit."""
        self._pipe.close()
        try:
            self.process.wait(GRACE + 2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    main()
