"""A few months of the demo clinic's past, so the reports show something on `make run`.

About 40 patients of the two sites (varied ages, genders, postal districts)
and, for every clinician's working day of the last `DAYS` days, a handful of
appointments with realistic outcomes: mostly fulfilled, some missed (noshow),
some cancelled by the patient or the clinic a few hours to days before, booked
from 0 to 3 weeks ahead through the portal, the clinic workspace, an app or
the EHR. They are written as an EHR's sync of the past would be: one version
each, final status, no Slot, `created` and the R5 cancellationDate carrying
when they were booked and cancelled.

Everything is drawn from a random generator seeded by the record's id, and
ids are fixed by clinician, date and position, so a rerun on the same day
adds nothing; a rerun on a later day adds the days since.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from fhir_server.demo.clinic import (
    CLINICIANS,
    SERVICES,
    SITES,
    Clinician,
    location_id,
    practitioner_id,
    service_id,
)
from fhir_server.fhir.instants import fhir_instant
from fhir_server.fhir.resource import Resource
from fhir_server.fhir.validation import validate_resource
from fhir_server.reporting.channel import CANCEL_REASON_SYSTEM, CHANNEL_URL
from fhir_server.reporting.facts import CANCELLATION_DATE
from fhir_server.store.bulk_load import insert_first_versions
from fhir_server.store.clock import to_instant
from fhir_server.store.resources import ResourceStore

DAYS: Final = 90
PER_DAY: Final = 6
PATIENTS_PER_SITE: Final = 20
_WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DISTRICTS: Final = {
    "nyc": ("10024", "10025", "10128", "11201", "07030"),
    "london": ("W1U 4NR", "NW1 6XE", "SE1 7PB", "E1 6AN", "N1 9GU"),
}
_GIVEN: Final = ("Alex", "Sam", "Maria", "Ken", "Aisha", "Li", "Noah", "Eva", "Omar", "Zoe")
_FAMILY: Final = ("Smith", "Garcia", "Chen", "Khan", "Brown", "Novak", "Silva", "Ito")
_TYPES: Final = ("ROUTINE", "FOLLOWUP", "WALKIN")
_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0276"
_CHANNELS: Final = (("portal", 45), ("clinic", 30), ("app", 10), ("ehr", 15))


def history_patient_id(site: str, n: int) -> str:
    return f"demo-history-{site}-{n}"


def patients() -> list[Resource]:
    out = []
    for site in SITES:
        for n in range(PATIENTS_PER_SITE):
            rng = random.Random(history_patient_id(site.key, n))
            born = date(rng.randint(1935, 2022), rng.randint(1, 12), rng.randint(1, 28))
            out.append(
                {
                    "resourceType": "Patient",
                    "id": history_patient_id(site.key, n),
                    "active": True,
                    "name": [{"family": rng.choice(_FAMILY), "given": [rng.choice(_GIVEN)]}],
                    "gender": rng.choice(("female", "male", "female", "male", "other")),
                    "birthDate": born.isoformat(),
                    "address": [
                        {
                            "city": site.city,
                            "country": site.country,
                            "postalCode": rng.choice(_DISTRICTS[site.key]),
                        }
                    ],
                }
            )
    return out


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], [w for _, w in choices])[0]


def appointment(clinician: Clinician, day: date, n: int, now: datetime) -> Resource | None:
    """The clinician's n-th appointment of a past day, or None when it is not yet over."""
    service = next(s for s in SERVICES if s.key == clinician.service)
    site = next(s for s in SITES if s.key == service.site)
    rid = f"demo-history-{clinician.key}-{day.isoformat()}-{n}"
    rng = random.Random(rid)
    zone = ZoneInfo(site.zone)
    first = datetime.combine(day, time.fromisoformat(clinician.starts), zone)
    start = (first + timedelta(minutes=n * service.minutes * 2)).astimezone(UTC)
    end = start + timedelta(minutes=service.minutes)
    if end >= now:
        return None
    lead = min(int(rng.expovariate(1 / 4)), 21)
    created = start - timedelta(days=lead, hours=rng.randint(1, 8))
    outcome = _weighted(rng, (("fulfilled", 78), ("noshow", 8), ("cancelled", 14)))
    patient = history_patient_id(site.key, rng.randrange(PATIENTS_PER_SITE))
    body: Resource = {
        "resourceType": "Appointment",
        "id": rid,
        "status": outcome,
        "created": fhir_instant(created),
        "start": fhir_instant(start),
        "end": fhir_instant(end),
        "appointmentType": {"coding": [{"system": _TYPE_SYSTEM, "code": rng.choice(_TYPES)}]},
        "extension": [{"url": CHANNEL_URL, "valueCode": _weighted(rng, _CHANNELS)}],
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {
                "actor": {"reference": f"Practitioner/{practitioner_id(clinician)}"},
                "status": "accepted",
            },
            {"actor": {"reference": f"Location/{location_id(site)}"}, "status": "accepted"},
            {
                "actor": {"reference": f"HealthcareService/{service_id(service)}"},
                "status": "accepted",
            },
        ],
    }
    if outcome == "cancelled":
        hours_before = rng.choice((2, 6, 12, 20, 30, 48, 72, 120))
        cancelled = max(created, start - timedelta(hours=hours_before))
        code = "pat" if rng.random() < 0.7 else "prov"
        body["cancelationReason"] = {"coding": [{"system": CANCEL_REASON_SYSTEM, "code": code}]}
        body["extension"].append(
            {"url": CANCELLATION_DATE, "valueDateTime": fhir_instant(cancelled)}
        )
    return body


def appointments(now: datetime, days: int = DAYS) -> list[Resource]:
    out = []
    for back in range(days, -1, -1):
        day = (now - timedelta(days=back)).date()
        for clinician in CLINICIANS:
            if _WEEKDAYS[day.weekday()] not in clinician.days:
                continue
            for n in range(PER_DAY):
                found = appointment(clinician, day, n, now)
                if found is not None:
                    out.append(found)
    return out


async def load_history(store: ResourceStore, now: datetime) -> int:
    """Write the past patients and appointments not stored yet; how many were new."""
    resources: list[dict[str, Any]] = [*patients(), *appointments(now)]
    for resource in resources:
        validate_resource(resource)
    at = to_instant(now)
    return await insert_first_versions(store, [(r, at) for r in resources])
