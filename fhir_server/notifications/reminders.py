"""Beat job (every minute): plan reminder rows, then turn the due ones into messages.

Planning follows the Appointment history instead of the booking writing a
row: every version written `booked` since the last run gets a row for its
start (one per appointment and start, holding the configured offsets that
were still ahead when that version was written, and when the first is due).
A booking thus costs one store command less, and a booked appointment gets
its reminders whichever way it was written. The run records how far it read
(`store.markers`) and reads again from a minute before that, since a
version's history row can be stored a little after its instant; a row
already planned is kept as it is, so reading a version twice is harmless.

When a row is due the appointment is read again: a cancelled appointment,
one that has started, or one that moved (its start differs from the
row's) gets no reminder from it; a moved appointment has a row for its new
start. When several offsets are due at once (the scan was down), only the
nearest is sent. Then the row waits for its next offset, or is closed after
its last. The message is recorded before the row moves on, and its key makes
recording twice harmless, so a crash between the two neither loses nor
doubles a reminder.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.fhir.errors import FhirError
from fhir_server.notifications.delivery import Context
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.settings import Settings
from fhir_server.store import markers
from fhir_server.store.clock import parse_instant, to_instant
from fhir_server.store.outbox_store import ReminderRow
from fhir_server.store.resources import Version, order_key

log = logging.getLogger(__name__)

PLANNED = "reminders_planned"
# How long after its instant a version's history row may still be stored (the
# unit of work writes it when the request ends): each run reads this far back.
_LATE_WRITE = timedelta(minutes=1)
_PAGE = 500


def reminder_rows(
    appointment: dict[str, Any], settings: Settings, now: datetime
) -> list[ReminderRow]:
    """The row for the reminder offsets still ahead of `now` (past ones are not sent late);
    none when no offset is, or when the appointment is not booked."""
    if appointment.get("status") != "booked" or not appointment.get("start"):
        return []
    start = parse_instant(appointment["start"])
    ahead = sorted(
        (o for o in settings.notify_reminder_offsets if start - timedelta(minutes=o) > now),
        reverse=True,
    )
    if not ahead:
        return []
    start_key = to_instant(start)
    return [
        ReminderRow(
            key=f"{appointment['id']}|{start_key}",
            appointment=appointment["id"],
            start=start_key,
            offsets=tuple(ahead),
            due=to_instant(start - timedelta(minutes=ahead[0])),
        )
    ]


def _rows_of(version: Version, settings: Settings) -> list[ReminderRow]:
    """The rows a stored version calls for; none (logged) for one that cannot be read as an
    appointment, so that a single bad version never stops everyone's reminders."""
    if version.resource is None:
        return []
    try:
        return reminder_rows(version.resource, settings, parse_instant(version.updated))
    except (KeyError, TypeError, ValueError):
        log.warning(
            "Appointment/%s version %s: no reminders planned (unreadable start)",
            version.id,
            version.version,
        )
        return []


async def plan(ctx: Context, now: datetime) -> int:
    """Write the rows of the Appointment versions stored since the last run; how many were
    new. Appointments that start before `now` get none (they can no longer be reminded)."""
    at = to_instant(now)
    marker = await markers.read(ctx.store, PLANNED)
    since = order_key(to_instant(parse_instant(marker["updated"]) - _LATE_WRITE)) if marker else ""
    seen: set[tuple[str, int]] = set()
    latest = None
    added = 0
    while True:
        page = await ctx.store.versions_from("Appointment", since, _PAGE)
        fresh = [v for v in page if (v.id, v.version) not in seen]
        if not fresh:
            break
        seen.update((v.id, v.version) for v in fresh)
        rows = [row for v in fresh for row in _rows_of(v, ctx.settings) if row.start > at]
        added += await ctx.outbox.add_reminders(rows)
        latest = page[-1].updated
        since = order_key(latest)
    if latest is not None:
        await markers.write(ctx.store, PLANNED, {"updated": latest})
    return added


async def enqueue_due(ctx: Context, now: datetime | None = None) -> list[str]:
    """Plan the rows of new bookings, then record (and publish) the reminders due by `now`;
    the message ids."""
    now = now or datetime.now(UTC)
    await plan(ctx, now)
    at = to_instant(now)
    sent: list[str] = []
    due = await ctx.outbox.due_reminders(at)
    nearest: dict[tuple[str, str], int] = {}
    for row in due:
        key = (row.appointment, row.start)
        for offset in row.offsets:
            if row.due_at(offset) <= at:
                nearest[key] = min(nearest.get(key, offset), offset)
    for row in due:
        offset = nearest[(row.appointment, row.start)]
        left = tuple(o for o in row.offsets if row.due_at(o) > at)
        if offset not in row.offsets:
            # A later reminder is due too (the scan was down): send only that one.
            await ctx.outbox.settle_reminder(row, left, "superseded")
            continue
        try:
            appointment = (await ctx.store.read("Appointment", row.appointment)).resource
        except FhirError:
            appointment = None
        current = (
            appointment is not None
            and appointment.get("status") == "booked"
            and appointment.get("start")
            and to_instant(parse_instant(appointment["start"])) == row.start
            and row.start > at
        )
        if not current or appointment is None:
            await ctx.outbox.settle_reminder(row, left, "skipped")
            continue
        event = AppointmentEvent("reminder", appointment, offset_minutes=offset)
        async with ctx.store.unit_of_work() as uow:
            sent += await record_event(ctx.store, uow, event, settings=ctx.settings, now=now)
        await ctx.outbox.settle_reminder(row, left, "sent")
    return sent
