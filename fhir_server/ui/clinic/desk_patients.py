"""The front desk's patient logic: find, match and register Patients through the API.

No HTTP and no templates here: forms come in as plain values, FHIR calls go
through the desk user's `PortalApi`, view rows come out. A new patient is
first matched (`Patient/$match`, the server's scoring) and created only when
no stored Patient is a certain match, so a phone call never makes a second
record of someone already registered; the desk picks a probable one itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

from fhir_server.ui.fhir_api import PortalApi, entries
from fhir_server.ui.portal.booking_model import N_, Resource, name_of, parse_day
from fhir_server.ui.portal.booking_pages import parameters

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
GRADE_WORDS = {
    "certain": N_("Certain match"),
    "probable": N_("Probable match"),
    "possible": N_("Possible match"),
}
GENDERS = {
    "female": N_("Female"),
    "male": N_("Male"),
    "other": N_("Other"),
    "unknown": N_("Unknown"),
}
FOUND_AT_MOST = 50
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TEXT_LIMIT = 100


def is_fhir_id(value: str) -> bool:
    """Whether `value` can be a resource id (anything else is answered as not found)."""
    return bool(_FHIR_ID.fullmatch(value))


def digits(phone: str) -> str:
    """A phone number's last 9 digits: the key the server's `match-telecom` index keeps, so
    +44 20 7946 0142 and 020 7946 0142 find the same Patient."""
    return re.sub(r"\D", "", phone)[-9:]


@dataclass(frozen=True)
class PatientRow:
    """One Patient as the desk's tables show it; `grade` for a `$match` answer."""

    id: str
    name: str
    birth_date: str
    phones: list[str]
    emails: list[str]
    identifiers: list[str]
    grade: str = ""

    @property
    def grade_words(self) -> str:
        return GRADE_WORDS.get(self.grade, "")


def row_of(patient: Resource, grade: str = "") -> PatientRow:
    telecom = patient.get("telecom") or []
    return PatientRow(
        id=str(patient.get("id")),
        name=name_of(patient),
        birth_date=str(patient.get("birthDate") or ""),
        phones=[str(t["value"]) for t in telecom if t.get("system") == "phone" and t.get("value")],
        emails=[str(t["value"]) for t in telecom if t.get("system") == "email" and t.get("value")],
        identifiers=[str(i["value"]) for i in patient.get("identifier") or [] if i.get("value")],
        grade=grade,
    )


def label(patient: Resource) -> str:
    """ "Jane Doe (born 1990-04-02)": who the desk is acting for, on every booking page."""
    born = patient.get("birthDate")
    return f"{name_of(patient)} ({born})" if born else name_of(patient)


@dataclass(frozen=True)
class Typed:
    """A form's answers as typed: each field's text, trimmed and cut to a sane length."""

    @classmethod
    def of(cls, values: Any) -> Self:
        """From query parameters or a form (unknown keys ignored)."""
        return cls(
            **{k: str(values.get(k) or "").strip()[:_TEXT_LIMIT] for k in cls.__dataclass_fields__}
        )


# -- finding ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Search(Typed):
    """The find-a-patient form."""

    name: str = ""
    birthdate: str = ""
    phone: str = ""
    identifier: str = ""

    @property
    def empty(self) -> bool:
        return not (self.name or self.birthdate or self.phone or self.identifier)

    def problems(self) -> list[tuple[str, str]]:
        """(field id, message id) of each value that cannot be searched."""
        found = []
        if self.empty:
            found.append(("name", N_("Enter a name, date of birth, phone number or identifier")))
        if self.birthdate and parse_day(self.birthdate) is None:
            found.append(("birthdate", N_("Enter the date of birth as a real date")))
        if self.phone and len(digits(self.phone)) < 6:
            found.append(("phone", N_("Enter at least 6 digits of the phone number")))
        return found

    def query(self) -> list[tuple[str, str]]:
        """The Patient search: each word of the name (all must match a name part, any order),
        the birth date, the phone's digits, the identifier (`value` or `system|value`)."""
        query = [("name", word) for word in self.name.split()]
        if self.birthdate:
            query.append(("birthdate", self.birthdate))
        if self.phone:
            query.append(("match-telecom", digits(self.phone)))
        if self.identifier:
            query.append(("identifier", self.identifier))
        return [*query, ("_sort", "family,given"), ("_count", str(FOUND_AT_MOST))]


async def find(api: PortalApi, search: Search) -> list[PatientRow]:
    bundle = await api.search("Patient", search.query())
    return [row_of(p) for p in entries(bundle, "Patient")]


async def patient(api: PortalApi, patient_id: str) -> Resource:
    """One Patient (PortalApiError 404 for an unknown id, as for any other read)."""
    return await api.read("Patient", patient_id)


# -- registering ------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPatient(Typed):
    """The register form."""

    given: str = ""
    family: str = ""
    birthdate: str = ""
    gender: str = ""
    phone: str = ""
    email: str = ""
    identifier: str = ""

    def problems(self, today: date) -> list[tuple[str, str]]:
        """(field id, message id) of each missing or malformed answer."""
        found = []
        if not self.given:
            found.append(("given", N_("Enter the patient's first name")))
        if not self.family:
            found.append(("family", N_("Enter the patient's last name")))
        born = parse_day(self.birthdate)
        if born is None:
            found.append(("birthdate", N_("Enter the date of birth as a real date")))
        elif born > today:
            found.append(("birthdate", N_("The date of birth must be in the past")))
        if self.gender and self.gender not in GENDERS:
            found.append(("gender", N_("Choose a gender from the list")))
        if self.phone and len(digits(self.phone)) < 6:
            found.append(("phone", N_("Enter a phone number with at least 6 digits")))
        if self.email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.email):
            found.append(("email", N_("Enter an e-mail address like name@example.org")))
        return found

    def resource(self) -> Resource:
        """The Patient to match and create; an identifier typed `system|value` keeps its system."""
        body: Resource = {
            "resourceType": "Patient",
            "active": True,
            "name": [{"use": "official", "family": self.family, "given": [self.given]}],
            "birthDate": self.birthdate,
        }
        if self.gender:
            body["gender"] = self.gender
        telecom = [
            *([{"system": "phone", "value": self.phone}] if self.phone else []),
            *([{"system": "email", "value": self.email}] if self.email else []),
        ]
        if telecom:
            body["telecom"] = telecom
        if self.identifier:
            system, bar, value = self.identifier.rpartition("|")
            body["identifier"] = [{"system": system, "value": value} if bar else {"value": value}]
        return body


def _grade(entry: Resource) -> str:
    for item in (entry.get("search") or {}).get("extension", []):
        if item.get("url") == MATCH_GRADE:
            return str(item.get("valueCode"))
    return ""


async def matches(api: PortalApi, new: NewPatient) -> list[PatientRow]:
    """The stored Patients `$match` finds for the new one, best first (certain, probable,
    then possible; `certainly-not` left out)."""
    answer = await api.operation(
        "Patient/$match", parameters({"name": "resource", "resource": new.resource()})
    )
    rows = [
        row_of(e["resource"], _grade(e))
        for e in answer.get("entry", [])
        if (e.get("search") or {}).get("mode") == "match" and "resource" in e
    ]
    rank = list(GRADE_WORDS)
    return sorted((r for r in rows if r.grade in rank), key=lambda r: rank.index(r.grade))


async def register(api: PortalApi, new: NewPatient) -> str:
    """Create the Patient; its id."""
    created = await api.request("POST", "Patient", json_body=new.resource())
    return str(created["id"])
