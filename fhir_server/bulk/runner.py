"""One slice of an export job's work: claim it, write parts, checkpoint, hand back or finish.

A worker claims the job with a lease (`store.export_store.claim`), then walks
each type's rows in `_id` order from the job's `position`, in keyset pages
(`store.export_store.keyset_pages`: each query starts at the last id seen and
returns at most a page, so neither the worker nor the store ever holds the
whole set). Every `export_part_size` resources it writes one part and
records the new position in the same step that renews its lease, so memory
holds one part at most and a crash loses at most one part's work: the next
worker rewrites that part from the last position (parts are keyed by number,
so the rewrite replaces a part written after the last checkpoint). After
`export_slice` seconds the worker records where it is and gives the job back
to the queue, so a long export never holds the export worker from other jobs
(notifications have a worker of their own: the `exports` queue is separate). The
slice's time counts from the first row, and is at least three times what the
first page took to answer, so a slow store still makes progress each slice.

Rows changed after the kick-off are left out (`transactionTime`), so a job
resumed later exports the set it would have exported without a break.

The manifest's outputs are written in the same conditional update that marks
the job `completed`, after every part: a status poll sees a complete manifest
or none.

Every resource written passes `auth.policy.visible` for the requester's read
limits: the same decision the API applies to whatever leaves the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.auth.policy import TokenContext, visible
from fhir_server.auth.scopes import ScopeSet
from fhir_server.bulk.jobs import ERRORS, omitted_outcome
from fhir_server.bulk.selection import Selection
from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.settings import Settings
from fhir_server.store.export_store import ExportStore
from fhir_server.store.resources import ResourceStore, body_of

Clock = Callable[[], float]


@dataclass(frozen=True)
class Slice:
    """What a slice ended with: `done` (completed), `more` (handed back), `idle` (the job
    was not this worker's to run: finished, cancelled, or leased by another)."""

    outcome: str


def requester_limits(requester: dict[str, Any] | None) -> ReadLimits | None:
    """The read limits of the token that asked (None: auth was off)."""
    if requester is None:
        return None
    token = TokenContext(
        scopes=ScopeSet.parse(requester["scope"]),
        client_id=requester["client_id"],
        sub=requester.get("sub"),
    )
    return token.limits


class Runner:
    def __init__(self, store: ResourceStore, settings: Settings, clock: Clock = time.time) -> None:
        self.exports = ExportStore(store.database)
        self.selection = Selection(store, settings)
        self.settings = settings
        self.clock = clock

    async def run(self, job_id: str, owner: str) -> Slice:
        now = self.clock()
        job = await self.exports.claim(job_id, owner, now, now + self.settings.export_lease)
        if job is None:
            return Slice("idle")
        return await _Work(self, job, owner).run()


class _Work:
    """One claimed job's slice (state kept between parts)."""

    def __init__(self, runner: Runner, job: dict[str, Any], owner: str) -> None:
        self.runner = runner
        self.exports = runner.exports
        self.job = job
        self.job_id: str = job["_id"]
        self.owner = owner
        self.deadline = 0.0  # set as each type's rows start to arrive
        self.limits = requester_limits(job.get("requester"))
        self.position: dict[str, Any] = dict(job["position"])
        self.outputs: list[dict[str, Any]] = list(job["outputs"])
        self.counted: int = job["counted"]

    async def run(self) -> Slice:
        types: list[str] = self.job["types"]
        while self.position["index"] < len(types):
            rtype = types[self.position["index"]]
            finished = await self._type(rtype)
            if finished is None:
                return Slice("idle")
            if not finished:
                return Slice("more") if await self._step(lease_until=0.0) else Slice("idle")
            if self.position["count"]:
                self.outputs.append({"type": rtype, "count": self.position["count"]})
            self.position = {"index": self.position["index"] + 1, "after": None, "seq": 0}
            self.position["count"] = 0
            if not await self._step():
                return await self._lost()
        return await self._complete()

    async def _type(self, rtype: str) -> bool | None:
        """Write the type's rows from the position on: True when all are written, False
        when the slice's time ran out, None when the job was lost meanwhile."""
        filters = await self.runner.selection.filters(self.job, rtype, self.limits)
        if not filters:
            return True
        lines: list[str] = []
        last: str | None = None
        until = self.job["transaction_time"]
        asked = self.runner.clock()
        cursor = self.exports.rows_after(rtype, filters, self.position["after"])
        try:
            async for row in cursor:
                if last is None:  # the query has started: the slice's time counts from here
                    self.deadline = self._deadline(asked)
                last = row["_id"]
                if row["updated"] > until:
                    continue  # changed after the kick-off (same fixed-width UTC form)
                text = row.get("body")
                resource = body_of(row)
                if resource is None or (self.limits and not visible(self.limits, resource)):
                    continue
                lines.append(text if isinstance(text, str) else orjson.dumps(resource).decode())
                if len(lines) >= self.runner.settings.export_part_size:
                    if not await self._part(rtype, lines, last):
                        return None
                    lines = []
                    if self.runner.clock() > self.deadline:
                        return False
        finally:
            await cursor.aclose()
        if lines or last is not None:
            return True if await self._part(rtype, lines, last) else None
        return True

    def _deadline(self, asked: float) -> float:
        """When the slice ends: `export_slice` seconds from the first row, and at least three
        times what the query took to answer, so a slow start is at most a quarter of it."""
        now = self.runner.clock()
        return now + max(self.runner.settings.export_slice, 3 * (now - asked))

    async def _part(self, rtype: str, lines: list[str], last: str | None) -> bool:
        """Store one part and checkpoint after it (nothing to store: only the position)."""
        position = self.position
        if lines:
            text = "\n".join(lines) + "\n"
            await self.exports.put_part(self.job_id, rtype, position["seq"], text, len(lines))
        self.position = {
            **position,
            "after": last,
            "seq": position["seq"] + (1 if lines else 0),
            "count": position["count"] + len(lines),
        }
        self.counted += len(lines)
        if await self._step():
            return True
        await self._lost()
        return False

    async def _step(self, *, lease_until: float | None = None) -> bool:
        until = self.runner.clock() + self.runner.settings.export_lease
        changes = {
            "position": self.position,
            "outputs": self.outputs,
            "counted": self.counted,
            "lease_until": until if lease_until is None else lease_until,
        }
        return await self.exports.step(self.job_id, self.owner, changes)

    async def _lost(self) -> Slice:
        """The job stopped being ours: when it was cancelled, the part just written goes
        too (another worker that took over keeps its own)."""
        job = await self.exports.get(self.job_id)
        if job is None or job["status"] == "cancelled":
            await self.exports.drop_parts(self.job_id)
        return Slice("idle")

    async def _complete(self) -> Slice:
        omitted: list[str] = self.job.get("omitted") or []
        if omitted and not any(o["type"] == ERRORS for o in self.outputs):
            line = orjson.dumps(omitted_outcome(omitted)).decode() + "\n"
            await self.exports.put_part(self.job_id, ERRORS, 0, line, 1)
            self.outputs.append({"type": ERRORS, "count": 1})
        now = self.runner.clock()
        done = await self.exports.step(
            self.job_id,
            self.owner,
            {
                "status": "completed",
                "outputs": self.outputs,
                "counted": self.counted,
                "position": self.position,
                "lease_until": 0.0,
                "expires": now + self.runner.settings.export_file_lifetime,
            },
        )
        return Slice("done") if done else await self._lost()
