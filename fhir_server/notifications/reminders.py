"""Beat job (every minute): turn due reminder rows into reminder messages.

Rows are written with the booking (one per configured offset, only for
offsets still ahead). When a row is due the appointment is read again: a
cancelled appointment, or one that moved (its start differs from the row's),
gets no reminder from this row; a moved appointment has rows for its new
start. When several offsets of one appointment are due at once (the scan was
down), only the nearest is sent. The message is recorded before the row is closed, and its key makes
recording twice harmless, so a crash between the two neither loses nor
doubles a reminder.
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
    sent: list[str] = []
    due = await ctx.outbox.due_reminders(to_instant(now))
    nearest: dict[tuple[str, str], int] = {}
    for row in due:
        key = (row.appointment, row.start)
        nearest[key] = min(nearest.get(key, row.offset_minutes), row.offset_minutes)
    for row in due:
        if row.offset_minutes != nearest[(row.appointment, row.start)]:
            # A later reminder is due too (the scan was down): send only that one.
            await ctx.outbox.close_reminder(row.key, "superseded")
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
            await ctx.outbox.close_reminder(row.key, "skipped")
            continue
        event = AppointmentEvent("reminder", appointment, offset_minutes=row.offset_minutes)
        async with ctx.store.unit_of_work() as uow:
            sent += await record_event(ctx.store, uow, event, settings=ctx.settings, now=now)
        await ctx.outbox.close_reminder(row.key, "sent")
    return sent
