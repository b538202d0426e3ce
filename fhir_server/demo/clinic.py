"""The demo clinic as FHIR resources: fixed ids, fixed content, no I/O.

One organisation with two sites in different time zones, so the scheduling
code has DST and zone differences to show. The data is fictional; phone
numbers use the ranges reserved for drama (US 555-01xx, UK Ofcom 020 7946 0xxx)
and e-mail addresses the reserved `example.org` domain (RFC 2606).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.publishing.public import PUBLIC_TAG

Resource = dict[str, Any]

TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
"""Standard R4 extension carrying an IANA time zone name as valueCode."""

ORGANIZATION_ID = "demo-clinic"
_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
_SNOMED = "http://snomed.info/sct"
_SERVICE_CATEGORY = "http://terminology.hl7.org/CodeSystem/service-category"
_PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"


@dataclass(frozen=True)
class Site:
    key: str
    name: str
    zone: str
    line: str
    city: str
    state: str
    postal_code: str
    country: str
    phone: str
    opens: str
    closes: str


@dataclass(frozen=True)
class Service:
    key: str
    site: str
    name: str
    category: tuple[str, str]
    specialty: tuple[str, str]
    minutes: int


@dataclass(frozen=True)
class Clinician:
    key: str
    family: str
    given: str
    prefix: str
    gender: str
    role: str
    service: str
    starts: str
    ends: str
    days: tuple[str, ...]


@dataclass(frozen=True)
class DemoPatient:
    key: str
    family: str
    given: str
    gender: str
    birth_date: str
    phone: str
    email: str
    site: str


SITES = (
    Site(
        "nyc",
        "Riverside Clinic Manhattan",
        "America/New_York",
        "210 West 86th Street",
        "New York",
        "NY",
        "10024",
        "US",
        "+1-212-555-0100",
        "08:00:00",
        "18:00:00",
    ),
    Site(
        "london",
        "Riverside Clinic London",
        "Europe/London",
        "12 Marylebone High Street",
        "London",
        "England",
        "W1U 4NR",
        "GB",
        "+44 20 7946 0100",
        "09:00:00",
        "17:30:00",
    ),
)

SERVICES = (
    Service(
        "nyc-primary-care",
        "nyc",
        "General practice consultation",
        ("17", "General Practice"),
        ("394814009", "General practice (specialty)"),
        20,
    ),
    Service(
        "nyc-pediatrics",
        "nyc",
        "Paediatric consultation",
        ("27", "Paediatrics"),
        ("394537008", "Pediatric specialty"),
        30,
    ),
    Service(
        "london-gp",
        "london",
        "GP appointment",
        ("17", "General Practice"),
        ("394814009", "General practice (specialty)"),
        15,
    ),
)

CLINICIANS = (
    Clinician(
        "ada-okafor",
        "Okafor",
        "Ada",
        "Dr",
        "female",
        "doctor",
        "nyc-primary-care",
        "08:30:00",
        "16:30:00",
        ("mon", "tue", "wed", "thu"),
    ),
    Clinician(
        "lucas-martin",
        "Martin",
        "Lucas",
        "Dr",
        "male",
        "doctor",
        "nyc-pediatrics",
        "10:00:00",
        "18:00:00",
        ("tue", "wed", "thu", "fri"),
    ),
    Clinician(
        "priya-shah",
        "Shah",
        "Priya",
        "Dr",
        "female",
        "doctor",
        "london-gp",
        "09:00:00",
        "17:00:00",
        ("mon", "wed", "fri"),
    ),
)

PATIENTS = (
    DemoPatient(
        "jane-doe",
        "Doe",
        "Jane",
        "female",
        "1990-04-02",
        "+1-212-555-0142",
        "jane.doe@example.org",
        "nyc",
    ),
    DemoPatient(
        "tom-baker",
        "Baker",
        "Tom",
        "male",
        "1978-11-23",
        "+44 20 7946 0142",
        "tom.baker@example.org",
        "london",
    ),
)


def _ref(resource_type: str, rid: str, display: str | None = None) -> Resource:
    ref: Resource = {"reference": f"{resource_type}/{rid}"}
    if display:
        ref["display"] = display
    return ref


def _concept(system: str, code: str, display: str) -> Resource:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def location_id(site: Site) -> str:
    return f"demo-location-{site.key}"


def service_id(service: Service) -> str:
    return f"demo-service-{service.key}"


def practitioner_id(clinician: Clinician) -> str:
    return f"demo-practitioner-{clinician.key}"


def role_id(clinician: Clinician) -> str:
    return f"demo-role-{clinician.key}"


def schedule_id(clinician: Clinician) -> str:
    return f"demo-schedule-{clinician.key}"


def patient_id(patient: DemoPatient) -> str:
    return f"demo-patient-{patient.key}"


def _site(key: str) -> Site:
    return next(s for s in SITES if s.key == key)


def _service(key: str) -> Service:
    return next(s for s in SERVICES if s.key == key)


def _address(site: Site) -> Resource:
    return {
        "use": "work",
        "line": [site.line],
        "city": site.city,
        "state": site.state,
        "postalCode": site.postal_code,
        "country": site.country,
    }


def organization() -> Resource:
    head = SITES[0]
    return {
        "resourceType": "Organization",
        "id": ORGANIZATION_ID,
        "active": True,
        "type": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/organization-type",
                "prov",
                "Healthcare Provider",
            )
        ],
        "name": "Riverside Clinic",
        "telecom": [
            {"system": "phone", "value": head.phone, "use": "work"},
            {"system": "email", "value": "appointments@example.org", "use": "work"},
        ],
        "address": [_address(head)],
    }


def location(site: Site) -> Resource:
    return {
        "resourceType": "Location",
        "id": location_id(site),
        "meta": {"tag": [PUBLIC_TAG]},  # published to slot finders ($bulk-publish)
        "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": site.zone}],
        "status": "active",
        "name": site.name,
        "mode": "instance",
        "telecom": [{"system": "phone", "value": site.phone, "use": "work"}],
        "address": _address(site),
        "physicalType": _concept(
            "http://terminology.hl7.org/CodeSystem/location-physical-type", "bu", "Building"
        ),
        "managingOrganization": _ref("Organization", ORGANIZATION_ID, "Riverside Clinic"),
        "hoursOfOperation": [
            {"daysOfWeek": _WEEKDAYS, "openingTime": site.opens, "closingTime": site.closes}
        ],
    }


def healthcare_service(service: Service) -> Resource:
    site = _site(service.site)
    return {
        "resourceType": "HealthcareService",
        "id": service_id(service),
        "active": True,
        "providedBy": _ref("Organization", ORGANIZATION_ID, "Riverside Clinic"),
        "category": [_concept(_SERVICE_CATEGORY, *service.category)],
        "specialty": [_concept(_SNOMED, *service.specialty)],
        "location": [_ref("Location", location_id(site), site.name)],
        "name": service.name,
        "comment": f"{service.minutes}-minute appointments.",
        "telecom": [{"system": "phone", "value": site.phone, "use": "work"}],
        "appointmentRequired": True,
        "availableTime": [
            {
                "daysOfWeek": _WEEKDAYS,
                "availableStartTime": site.opens,
                "availableEndTime": site.closes,
            }
        ],
    }


def _display(clinician: Clinician) -> str:
    return f"{clinician.prefix} {clinician.given} {clinician.family}"


def practitioner(clinician: Clinician) -> Resource:
    site = _site(_service(clinician.service).site)
    return {
        "resourceType": "Practitioner",
        "id": practitioner_id(clinician),
        "active": True,
        "name": [
            {
                "use": "official",
                "family": clinician.family,
                "given": [clinician.given],
                "prefix": [clinician.prefix],
            }
        ],
        "telecom": [
            {
                "system": "email",
                "value": f"{clinician.given.lower()}.{clinician.family.lower()}@example.org",
                "use": "work",
            },
            {"system": "phone", "value": site.phone, "use": "work"},
        ],
        "gender": clinician.gender,
    }


def practitioner_role(clinician: Clinician) -> Resource:
    service = _service(clinician.service)
    site = _site(service.site)
    return {
        "resourceType": "PractitionerRole",
        "id": role_id(clinician),
        "active": True,
        "practitioner": _ref("Practitioner", practitioner_id(clinician), _display(clinician)),
        "organization": _ref("Organization", ORGANIZATION_ID, "Riverside Clinic"),
        "code": [_concept(_PRACTITIONER_ROLE, clinician.role, clinician.role.capitalize())],
        "specialty": [_concept(_SNOMED, *service.specialty)],
        "location": [_ref("Location", location_id(site), site.name)],
        "healthcareService": [_ref("HealthcareService", service_id(service), service.name)],
        "availableTime": [
            {
                "daysOfWeek": list(clinician.days),
                "availableStartTime": clinician.starts,
                "availableEndTime": clinician.ends,
            }
        ],
    }


def schedule(clinician: Clinician) -> Resource:
    service = _service(clinician.service)
    site = _site(service.site)
    return {
        "resourceType": "Schedule",
        "id": schedule_id(clinician),
        "meta": {"tag": [PUBLIC_TAG]},
        "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": site.zone}],
        "active": True,
        "serviceCategory": [_concept(_SERVICE_CATEGORY, *service.category)],
        "specialty": [_concept(_SNOMED, *service.specialty)],
        "actor": [
            _ref("PractitionerRole", role_id(clinician), _display(clinician)),
            _ref("Location", location_id(site), site.name),
            _ref("HealthcareService", service_id(service), service.name),
        ],
        "comment": f"{_display(clinician)}, {service.name} at {site.name}.",
    }


def patient(demo: DemoPatient) -> Resource:
    site = _site(demo.site)
    return {
        "resourceType": "Patient",
        "id": patient_id(demo),
        "active": True,
        "name": [{"use": "official", "family": demo.family, "given": [demo.given]}],
        "telecom": [
            {"system": "phone", "value": demo.phone, "use": "mobile"},
            {"system": "email", "value": demo.email, "use": "home"},
        ],
        "gender": demo.gender,
        "birthDate": demo.birth_date,
        "address": [{"use": "home", "city": site.city, "country": site.country}],
        "managingOrganization": _ref("Organization", ORGANIZATION_ID, "Riverside Clinic"),
    }


def demo_resources() -> list[Resource]:
    """Every demo resource, referenced ones before the ones that refer to them."""
    return [
        organization(),
        *(location(site) for site in SITES),
        *(healthcare_service(service) for service in SERVICES),
        *(practitioner(clinician) for clinician in CLINICIANS),
        *(practitioner_role(clinician) for clinician in CLINICIANS),
        *(schedule(clinician) for clinician in CLINICIANS),
        *(patient(demo) for demo in PATIENTS),
    ]
