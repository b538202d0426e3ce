"""One-off: patient claims for the Appointments stored before claims existed.

A booking no longer searches the patient's stored Appointments for an
overlap: the claims on the patient's minutes (`store.patient_claims`) are
the check, so an Appointment that holds time must hold its claim. Those
written before claims existed get theirs here, once per database, at
startup (where indexes are ensured); a marker row makes every later start
skip it in one read.

Idempotent: a claim already held (a re-run after a crash, a booking made
since) is refused and skipped, as is one that overlaps another stored
appointment (two overlapping bookings from before cannot both hold the
time; the first one claimed keeps it). Appointments that ended before
yesterday are skipped: the minute job drops those days' rows anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir_server.fhir.appointment_status import BOOKED
from fhir_server.fhir.errors import Conflict
from fhir_server.scheduling.booking import claims_of
from fhir_server.store import patient_claims
from fhir_server.store import slots as slot_queries
from fhir_server.store.resources import ResourceStore


async def backfill_claims(store: ResourceStore, now: datetime) -> int:
    """Claim the time of every active Appointment that has none; how many were claimed."""
    since = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    claimed = 0
    for appointment in await slot_queries.appointments_in(store, BOOKED):
        for claim in claims_of(appointment):
            if claim.end < since:
                continue
            try:
                async with store.unit_of_work() as uow:
                    await patient_claims.claim(store, claim, uow)
            except Conflict:
                continue
            claimed += 1
    return claimed


async def ensure_claims_backfilled(store: ResourceStore) -> None:
    """Run the backfill unless this database has it done (then: one read)."""
    if await patient_claims.backfilled(store):
        return
    await backfill_claims(store, datetime.now(UTC))
    await patient_claims.mark_backfilled(store)
