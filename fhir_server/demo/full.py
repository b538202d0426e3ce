"""The whole demo a new user starts from: the clinic, four weeks of Slots, demo logins,
and three months of past appointments for the reports (`demo.history`).

Each part is idempotent (the clinic is written only where it differs, Slot
generation creates nothing it already made, logins are created once), so
`fhir-server demo` can be run any number of times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fhir_server.auth.demo_access import DemoAccess, ensure_demo_access
from fhir_server.demo.clinic import CLINICIANS, PATIENTS, patient_id, practitioner_id
from fhir_server.demo.history import load_history
from fhir_server.demo.loader import DemoSummary, Progress, load_demo
from fhir_server.scheduling.generation import generate_rolling
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.resources import ResourceStore

SLOT_WEEKS = 4


@dataclass(frozen=True)
class DemoResult:
    clinic: DemoSummary
    slots_created: int
    slots_kept: int
    access: DemoAccess | None
    past_appointments: int = 0  # past patients and appointments written by this run


async def prepare_demo(
    store: ResourceStore,
    auth_store: AuthStore | None,
    settings: Settings,
    now: datetime,
    progress: Progress | None = None,
) -> DemoResult:
    """Load the clinic, generate its Slots, and (when auth is on) its demo logins."""
    clinic = await load_demo(store, progress)
    reports = await generate_rolling(store, now, SLOT_WEEKS * 7)
    past = await load_history(store, now)  # the beat's report follower folds it in
    access = None
    if auth_store is not None:
        access = await ensure_demo_access(
            auth_store,
            settings,
            f"Patient/{patient_id(PATIENTS[0])}",
            f"Practitioner/{practitioner_id(CLINICIANS[0])}",
        )
    return DemoResult(
        clinic=clinic,
        slots_created=sum(r.created for r in reports.values()),
        slots_kept=sum(r.kept for r in reports.values()),
        access=access,
        past_appointments=past,
    )
