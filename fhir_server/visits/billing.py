"""Which code a visit is billed with: the clinic's configuration, carried as data.

A HealthcareService states its billing codes in two extensions (published from
`profiles/`), each a CodeableConcept that may hold CPT, SNOMED CT or a local code:

- `billing-visit-code`: what a fulfilled visit of this service is billed as;
  without it, the service's visits are not billed here;
- `billing-no-show-fee`: what a no-show is charged as; without it, no fee.

Pure: the service is read by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.fhir.resource import Resource

BASE = "https://clinic-booking.example.org/fhir/StructureDefinition"
VISIT_CODE = f"{BASE}/billing-visit-code"
NO_SHOW_FEE = f"{BASE}/billing-no-show-fee"


@dataclass(frozen=True)
class Charge:
    """One kind of charge a visit can cause: `kind` names it in the ChargeItem's id,
    `billed_when` is the Appointment status that makes it billable, `extension` the
    HealthcareService extension holding its code."""

    kind: str
    billed_when: str
    extension: str


VISIT = Charge("visit", "fulfilled", VISIT_CODE)
NO_SHOW = Charge("no-show", "noshow", NO_SHOW_FEE)
CHARGES = (VISIT, NO_SHOW)


def billing_code(service: Resource | None, charge: Charge) -> Resource | None:
    """The CodeableConcept `service` bills `charge` with; None when it is not configured."""
    for extension in (service or {}).get("extension", []):
        if extension.get("url") == charge.extension and extension.get("valueCodeableConcept"):
            code: Resource = extension["valueCodeableConcept"]
            return code
    return None
