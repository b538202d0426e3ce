"""The report rollups, kept from the history exactly once, and rebuilt from scratch.

A rollup table holds, for one source (appointments, their patients, or slots),
one grain (a day or a month), one period, one subject kind (all, practitioner,
service, location; schedule for slots) and one stratifier kind (none, or a
dimension), the summed counters of every cell by `subject value|stratum value`.
The patients' tables chain each patient's booking days (`add_patient`), so a
period's distinct patients can be counted from them; third next available has
a table per week (`TNA`), the free Slots as they stood at its measuring instant. A report
reads a few tables: the months wholly in its period and the days at its
edges, never the appointments.

`follow` (every minute from the beat, and before a report is answered)
reads the Appointment, Communication and Slot versions written since its
marker and folds them, page by page, into the
items (`facts`). Each page is one batch, numbered: the batch (its item rows
and its table deltas) is recorded first, then every table it changes is
written on condition that it still holds the batch before (a
compare-and-set on `seq`), then the items, then the marker; a batch that a
crash or a second runner left unfinished is replayed from its record, and a
table already past it is left alone. A version already folded (its item is
at that version or later) changes nothing, so reading again is harmless: a
rerun or a crash never counts twice. A history row may be stored up to a
minute after its instant (the unit of work writes it when the request ends),
so a run reads again from a minute before the previous run's start when that
is earlier than where it stopped; it does not re-read a burst of versions
(a Slot generation) on every run once that minute is over.

`rebuild` clears the rollups and folds the whole history in memory, then
writes the tables and items at once; while it runs, `follow` waits.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from fhir_server.fhir.instants import parse_instant
from fhir_server.reporting import facts
from fhir_server.reporting.facts import Cell, Item, Visits
from fhir_server.store import markers
from fhir_server.store.clock import to_instant
from fhir_server.store.report_store import ReportStore
from fhir_server.store.resources import ResourceStore, Version, order_key

MARKER: Final = "reports_followed"
STREAMS: Final = ("Appointment", "Communication", "Slot")
_LATE_WRITE: Final = timedelta(minutes=1)
_PAGE: Final = 500
_REBUILD_PAGE: Final = 5000
_REBUILDING: Final = 0  # the batch number a rebuild holds while it runs
_CLAIM_RETRY: Final = 0.05  # seconds before following on after another runner's claim
ALL: Final = "*"

Progress = Callable[[str, int], None]
"""Told (stream, versions read so far) as a rebuild goes."""


@dataclass(frozen=True)
class Source:
    """A kind of item and the table kinds it is summed into."""

    name: str
    subjects: tuple[str, ...]
    stratifiers: tuple[str, ...]


APPOINTMENTS: Final = Source(
    "appointment",
    ("all", "practitioner", "service", "location"),
    (
        "none",
        "practitioner",
        "service",
        "location",
        "appointment-type",
        "age-band",
        "gender",
        "postal-district",
    ),
)
PATIENTS: Final = Source("patient", APPOINTMENTS.subjects, APPOINTMENTS.stratifiers)
"""Distinct patients: each patient's booking days, chained row by row (`facts.chain`), in
tables of their own (day and month, the same subjects and stratifiers as appointments)."""
SLOTS: Final = Source(
    "slot",
    ("all", "practitioner", "service", "location", "schedule"),
    ("none", "practitioner", "service", "location"),
)

Tables = defaultdict[str, dict[str, dict[str, int]]]
"""Table id -> row key -> counter -> amount (a delta, or whole tables in a rebuild)."""
GRAINS: Final = ("d", "m")


TNA: Final = "tna"
"""Third next available's weekly tables: `tna|w|<Monday>`, rows `Schedule/x|*` (all its free
Slots) and `Schedule/x|<service>`, counters the free Slots by local start day as they stood at
the week's measuring instant."""


def table_id(source: Source, grain: str, period: str, stratifier: str) -> str:
    """`grain` is `d` (period `2026-03-14`) or `m` (period `2026-03`); the table's rows are
    keyed `subject|stratum`, the subject `*` (all) or a reference."""
    return f"{source.name}|{grain}|{period}|{stratifier}"


def source_of(key: str) -> Source:
    return SLOTS if key.startswith("Slot/") else APPOINTMENTS


def row_keys(source: Source, cell: Cell) -> list[tuple[str, list[str]]]:
    """The rows a cell counts in, by stratifier kind: `subject|stratum` for every subject
    (all, and each practitioner, service, location... it names) and stratum it has."""
    subjects = [ALL]
    for kind in source.subjects[1:]:
        subjects += cell.dims.get(kind) or []
    return [
        (
            stratifier,
            [
                f"{value}|{stratum}"
                for value in subjects
                for stratum in (
                    [ALL] if stratifier == "none" else cell.dims.get(stratifier) or [facts.UNKNOWN]
                )
            ],
        )
        for stratifier in source.stratifiers
    ]


def add_cell(
    tables: Tables, source: Source, cell: Cell, sign: int, grains: tuple[str, ...] = GRAINS
) -> None:
    """Add (sign 1) or take away (-1) a cell's counters in every table it is summed into
    (the hot loop of a rebuild: plain dicts, keys built once)."""
    rows = row_keys(source, cell)
    counters = [(name, sign * amount) for name, amount in cell.counters.items()]
    for grain in grains:
        prefix = f"{source.name}|{grain}|{cell.day if grain == 'd' else cell.day[:7]}|"
        for stratifier, keys in rows:
            table = tables[prefix + stratifier]
            for key in keys:
                row = table.get(key)
                if row is None:
                    row = table[key] = {}
                for name, amount in counters:
                    row[name] = row.get(name, 0) + amount


_DAY_ONLY: Final = ("pv:", "nx:")  # a patient's neighbouring days: read from day tables only


def add_patient(
    tables: Tables, visits: Visits, sign: int, grains: tuple[str, ...] = GRAINS
) -> None:
    """Add (sign 1) or take away (-1) what one patient adds to the patient tables: in each
    row their appointments count in, the chain of their booking days there."""
    by_row: dict[tuple[str, str], dict[str, int]] = {}
    for cell in visits.cells.values():
        booked = cell.counters.get("booked", 0)
        for stratifier, keys in row_keys(PATIENTS, cell):
            for key in keys:
                days = by_row.setdefault((stratifier, key), {})
                days[cell.day] = days.get(cell.day, 0) + booked
    for (stratifier, key), days in by_row.items():
        for day, counters in facts.chain(days).items():
            for grain in grains:
                period = day if grain == "d" else day[:7]
                row = tables[table_id(PATIENTS, grain, period, stratifier)].setdefault(key, {})
                for name, amount in counters.items():
                    if grain == "d" or not name.startswith(_DAY_ONLY):
                        row[name] = row.get(name, 0) + sign * amount


def months_of(tables: Tables) -> None:
    """Add the month tables, summed from the day tables (a rebuild folds days only)."""
    patients = f"{PATIENTS.name}|"  # added at both grains (`add_patient`)
    for tid in [t for t in tables if "|d|" in t and not t.startswith(patients)]:
        source, _, day, rest = tid.split("|", 3)
        month = tables[f"{source}|m|{day[:7]}|{rest}"]
        for key, counters in tables[tid].items():
            row = month.setdefault(key, {})
            for name, amount in counters.items():
                row[name] = row.get(name, 0) + amount


def new_tables() -> Tables:
    return defaultdict(dict)


def moved(tables: Tables, before: Item | None, after: Item, grains: tuple[str, ...]) -> None:
    """The table changes of an item going from `before` to `after`."""
    source = source_of(after.key)
    if before is not None and before.cell is not None:
        add_cell(tables, source, before.cell, -1, grains)
    if after.cell is not None:
        add_cell(tables, source, after.cell, 1, grains)
    if source is SLOTS:
        measured(tables, before, after)


def measured(tables: Tables, before: Item | None, after: Item) -> None:
    """Third next available: a Slot's previous version stops counting in the weeks measured
    from the new version's instant on (those measured before keep it: that is how the Slot
    stood then); the new version, if free, counts in its own weeks."""
    if before is not None and before.cell is not None and before.weeks and after.since:
        ended = parse_instant(after.since)
        for monday, at in before.weeks:
            if parse_instant(at) >= ended:
                _add_free(tables, before.cell, monday, -1)
    if after.cell is not None:
        for monday, _ in after.weeks:
            _add_free(tables, after.cell, monday, 1)


def _add_free(tables: Tables, cell: Cell, monday: str, sign: int) -> None:
    table = tables[f"{TNA}|w|{monday}"]
    for schedule in cell.dims.get("schedule") or []:
        for stratum in [ALL, *(cell.dims.get("service") or [facts.UNKNOWN])]:
            row = table.setdefault(f"{schedule}|{stratum}", {})
            row[cell.day] = row.get(cell.day, 0) + sign


def merged(rows: dict[str, Any], delta: dict[str, dict[str, int]]) -> dict[str, Any]:
    """A table's rows with a delta added; counters and rows that reach zero are dropped."""
    out = {key: dict(counters) for key, counters in rows.items()}
    for key, changes in delta.items():
        row = Counter(out.get(key, {}))
        row.update(changes)
        kept = {name: n for name, n in row.items() if n}
        if kept:
            out[key] = kept
        else:
            out.pop(key, None)
    return out


class Folder:
    """Folds versions into items, given the Patients and Schedules they name."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.patients: dict[str, Any] = {}
        self.schedules: dict[str, Any] = {}

    def fold(self, item: Item, version: Version) -> Item:
        body = None if version.deleted else version.resource
        if version.resource_type == "Slot":
            schedule = (body or {}).get("schedule", {}).get("reference", "")
            return facts.fold_slot(
                item,
                version.version,
                version.updated,
                body,
                self.schedules.get(str(schedule).partition("/")[2]),
                self.zone,
            )
        patient = facts.patient_of(body) if body else None
        return facts.fold_appointment(
            item,
            version.version,
            version.updated,
            body,
            self.patients.get(patient.partition("/")[2]) if patient else None,
            self.zone,
        )


def item_key(version: Version) -> str | None:
    """The item a version changes: its own, or for a delivered reminder its Appointment's."""
    if version.resource_type != "Communication":
        return f"{version.resource_type}/{version.id}"
    appointment = facts.delivered_reminder(version.resource or {})
    return f"Appointment/{appointment}" if appointment else None


def apply_version(
    items: dict[str, Item],
    folder: Folder,
    version: Version,
    tables: Tables,
    grains: tuple[str, ...] = GRAINS,
) -> None:
    """Fold one version into `items` (in place), recording the table changes."""
    key = item_key(version)
    if key is None:
        return
    before = items.get(key) or Item(key)
    if version.resource_type == "Communication":
        after = facts.fold_reminder(before)
    else:
        after = folder.fold(before, version)
    if after != before:
        moved(tables, before, after, grains)
        items[key] = after


def _plain(tables: Tables) -> dict[str, dict[str, dict[str, int]]]:
    plain: dict[str, dict[str, dict[str, int]]] = {}
    for tid, rows in tables.items():
        kept = {key: {n: v for n, v in row.items() if v} for key, row in rows.items()}
        kept = {key: row for key, row in kept.items() if row}
        if kept:
            plain[tid] = kept
    return plain


async def _lookups(reports: ReportStore, folder: Folder, page: list[Version]) -> None:
    """Load the Patients and Schedules a page of versions names."""
    patients, schedules = set(), set()
    for version in page:
        body = version.resource or {}
        if version.resource_type == "Appointment":
            patient = facts.patient_of(body)
            if patient:
                patients.add(patient.partition("/")[2])
        elif version.resource_type == "Slot":
            schedules.add(str(body.get("schedule", {}).get("reference", "")).partition("/")[2])
    folder.patients.update(await reports.resources("Patient", patients - set(folder.patients)))
    folder.schedules.update(await reports.resources("Schedule", schedules))


async def pages(
    store: ResourceStore, stream: str, since: str, size: int
) -> AsyncIterator[list[Version]]:
    """The versions of a type from the order key `since` on, page by page, each once.

    Pages overlap by the versions at their boundary instant (the scan is
    `at >= since`); a page of versions all written at one instant (a bulk load)
    is read again twice as large, so the scan always moves on.
    """
    seen: set[tuple[str, int]] = set()
    while True:
        page = await store.versions_from(stream, since, size)
        fresh = [v for v in page if (v.id, v.version) not in seen]
        if not fresh:
            if len(page) < size:
                return
            size *= 2
            continue
        seen.update((v.id, v.version) for v in fresh)
        yield fresh
        since = order_key(page[-1].updated)


async def follow(store: ResourceStore, zone: ZoneInfo, page_size: int = _PAGE) -> int:
    """Fold the versions written since the last run; how many versions changed an item.

    When another runner claims the next batch first (two reports at once, or a report and
    the beat), this one does not stop there: a report that followed must never read tables
    short of what was written. It goes round again, applies that runner's recorded batch
    itself (applying is idempotent) and folds on from there.
    """
    changed = 0
    while True:
        caught_up, folded = await _follow_once(store, zone, page_size)
        changed += folded
        if caught_up:
            return changed
        await asyncio.sleep(_CLAIM_RETRY)


async def _follow_once(store: ResourceStore, zone: ZoneInfo, page_size: int) -> tuple[bool, int]:
    """One pass of `follow`: (whether it got to the end of the history, versions folded);
    it stops short when another runner claimed the batch it was about to record."""
    reports = ReportStore(store)
    last = await reports.last_batch()
    if last is not None and not last["done"]:
        if last["n"] == _REBUILDING:
            return True, 0
        await _apply(reports, last)
    marker = await markers.read(store, MARKER) or {}
    folder = Folder(zone)
    changed = 0
    for stream in STREAMS:
        started = to_instant(datetime.now(UTC))
        async for fresh in pages(store, stream, _since(marker, stream), page_size):
            batch = await _batch(reports, folder, fresh)
            changed += batch["folded"]
            if not batch["changed"]:
                await _advance(reports, stream, fresh[-1].updated, started)
                continue
            number = (last["n"] if last else 0) + 1
            record = {
                "n": number,
                "stream": stream,
                "position": fresh[-1].updated,
                "started": started,
                "tables": orjson.dumps(batch["tables"]).decode(),
                "items": orjson.dumps(batch["changed"]).decode(),
            }
            if not await reports.claim(record):
                return False, changed  # another runner is folding this batch
            await _apply(reports, record)
            last = record
        await _complete(reports, stream)
    return True, changed


async def _batch(reports: ReportStore, folder: Folder, page: list[Version]) -> dict[str, Any]:
    await _lookups(reports, folder, page)
    keys = {k for k in (item_key(v) for v in page) if k}
    stored = await reports.items_of(keys)
    items = {key: Item.from_json(doc) for key, doc in stored.items()}
    before = dict(items)
    tables = new_tables()
    for version in page:
        apply_version(items, folder, version, tables)
    changed = [item.to_json() for key, item in items.items() if before.get(key) != item]
    folded = len(changed)  # the versions' own items; the patients they move come on top
    changed += [v.to_json() for v in await _patients_moved(reports, before, items, tables)]
    return {"tables": _plain(tables), "changed": changed, "folded": folded}


async def _patients_moved(
    reports: ReportStore, before: dict[str, Item], after: dict[str, Item], tables: Tables
) -> list[Visits]:
    """The patients whose appointments a page changed, with their new visits: each one's
    old contribution to the patient tables taken away and the new one added."""
    changed = {k for k, item in after.items() if before.get(k) != item}
    touched = {
        item.patient
        for k in changed
        for item in (before.get(k), after[k])
        if item is not None and item.patient
    }
    stored = await reports.items_of(f"Patient/{p}" for p in touched)
    out = []
    for patient in sorted(touched):
        key = f"Patient/{patient}"
        old = Visits.from_json(stored[key]) if key in stored else Visits(key)
        cells = {k: cell for k, cell in old.cells.items() if k not in changed}
        for k in changed:
            item = after[k]
            if item.patient == patient and item.cell is not None:
                cells[k] = item.cell
        new = Visits(key, cells)
        if new != old:
            add_patient(tables, old, -1)
            add_patient(tables, new, 1)
            out.append(new)
    return out


async def _apply(reports: ReportStore, record: dict[str, Any]) -> None:
    """Make a recorded batch's changes; those already made are left as they are."""
    number = record["n"]
    deltas: dict[str, dict[str, dict[str, int]]] = orjson.loads(record["tables"])
    current = await reports.tables(list(deltas))
    writes = []
    for tid, delta in deltas.items():
        seen, rows = current.get(tid, (None, {}))
        if seen is None or seen < number:
            writes.append((tid, seen, number, merged(rows, delta)))
    await reports.put_tables(writes)
    await reports.put_items(orjson.loads(record["items"]))
    await _advance(reports, record["stream"], record["position"], record["started"])
    await reports.finish(number)


def _since(marker: dict[str, Any], stream: str) -> str:
    """Where a run reads a stream from: where the last stopped (just after it when that run
    read the stream to its end, so a burst of versions at one instant is not read again),
    or a minute before the last run started if that is earlier (a version stored late)."""
    if not marker.get(stream):
        return ""
    position = order_key(marker[stream])
    if marker.get(f"{stream}-complete"):
        position = str(int(position) + 1).zfill(len(position))
    started = marker.get(f"{stream}-started") or marker[stream]
    late = order_key(to_instant(parse_instant(started) - _LATE_WRITE))
    return min(position, late)


async def _complete(reports: ReportStore, stream: str) -> None:
    """Record that a run read a stream to its end (up to its marker's position)."""
    marker = await markers.read(reports.store, MARKER) or {}
    if marker.get(stream) and not marker.get(f"{stream}-complete"):
        marker.pop("_id", None)
        await markers.write(reports.store, MARKER, {**marker, f"{stream}-complete": True})


async def _advance(reports: ReportStore, stream: str, position: str, started: str) -> None:
    """Record how far a stream has been read, and when that run started."""
    marker = await markers.read(reports.store, MARKER) or {}
    marker.pop("_id", None)
    fields = {stream: position, f"{stream}-started": started, f"{stream}-complete": False}
    await markers.write(reports.store, MARKER, {**marker, **fields})


async def rebuild(store: ResourceStore, zone: ZoneInfo, progress: Progress | None = None) -> int:
    """Clear the rollups and fold the whole history again; how many items there are."""
    reports = ReportStore(store)
    await reports.clear()
    await markers.write(store, MARKER, {})
    await reports.claim({"n": _REBUILDING, "stream": "", "position": "", "started": ""})
    folder = Folder(zone)
    folder.patients = await reports.all_resources("Patient")
    folder.schedules = await reports.all_resources("Schedule")
    items: dict[str, Item] = {}
    tables = new_tables()
    positions: dict[str, Any] = {}
    started = to_instant(datetime.now(UTC))
    for stream in STREAMS:
        read = 0
        async for version in reports.history(stream):
            apply_version(items, folder, version, tables, ("d",))
            read += 1
            if progress is not None and read % _REBUILD_PAGE == 0:
                progress(stream, read)
            positions[stream] = version.updated
            positions[f"{stream}-started"] = started
            positions[f"{stream}-complete"] = True
        if progress is not None:
            progress(stream, read)
    visits: dict[str, dict[str, Cell]] = {}
    for key, item in items.items():
        if item.patient and item.cell is not None:
            visits.setdefault(f"Patient/{item.patient}", {})[key] = item.cell
    patients = [Visits(key, cells) for key, cells in visits.items()]
    for patient in patients:
        add_patient(tables, patient, 1)
    months_of(tables)
    await reports.insert_tables(_plain(tables))
    await reports.insert_items([item.to_json() for item in items.values()])
    await reports.insert_items([patient.to_json() for patient in patients])
    await markers.write(store, MARKER, positions)
    await reports.finish(_REBUILDING)
    return len(items)
