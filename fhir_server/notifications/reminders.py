"""Beat job (every minute): turn due reminder rows into reminder messages.

A row is written with the booking: one per appointment and start, holding
the configured offsets still ahead and when the first is due. When it is
due the appointment is read again: a cancelled appointment, or one that
moved (its start differs from the row's), gets no reminder from it; a moved
appointment has a row for its new start. When several offsets are due at
once (the scan was down), only the nearest is sent. Then the row waits for
its next offset, or is closed after its last. The message is recorded before
the row moves on, and its key makes recording twice harmless, so a crash
between the two neither loses nor doubles a reminder.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.fhir.errors import FhirError
from fhir_server.notifications.delivery import Context
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.store.clock import parse_instant, to_instant


async def enqueue_due(ctx: Context, now: datetime | None = None) -> list[str]:
    """Record (and publish) the reminders due by `now`; the message ids."""
    now = now or datetime.now(UTC)
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
        )
        if not current or appointment is None:
            await ctx.outbox.settle_reminder(row, left, "skipped")
            continue
        event = AppointmentEvent("reminder", appointment, offset_minutes=offset)
        async with ctx.store.unit_of_work() as uow:
            sent += await record_event(ctx.store, uow, event, settings=ctx.settings, now=now)
        await ctx.outbox.settle_reminder(row, left, "sent")
    return sent
