"""Roles: what each kind of user may do, as a table (pure, no I/O).

Four roles, one word each everywhere (accounts, token claim, booking engine):

- `patient`: their own records (the patient compartment, decided in
  `auth.policy`) and the public directory; never the clinic-controlled
  fields listed in `PATIENT_PROTECTED`, never a Slot or Schedule write.
- `practitioner`: their own schedule, their appointments and the patients
  booked with them; the directory read-only, except their own
  PractitionerRoles' hours and time off (`PRACTITIONER_HOURS`); their own
  Practitioner record.
- `frontdesk`: the clinic's staff: patients, appointments (booking on a
  patient's behalf, check-in) and the clinic's schedules, read-only
  configuration.
- `admin`: everything, users, clients and configuration included.

The account's role is carried in the access token's `role` claim. A token
without one is either a backend service's (no user: its scopes alone decide,
`role_of` answers None) or one issued before roles existed (its role follows
its fhirUser: patient or practitioner; otherwise its scopes alone decide).

Three questions, each asked from one place:

- `judge`, from `auth.policy.decide`, for every interaction: a refusal is
  403; a `narrowing` is the criteria the resource a change names must match
  (changing another practitioner's appointment answers 404, as for a
  patient).
- `read_limits`, from `auth.policy` when a token's read limits are worked
  out: types the role may not read are dropped, "own records only" types get
  the narrowing as criteria, so searches, chains, includes and everything
  leaving the server are cut the same way.
- `refused_write`, from `auth.role_checks` before a write, for the rules
  that compare the new version with the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import orjson

from fhir_server.auth.compartment import in_patient_compartment, reference_key
from fhir_server.auth.scopes import INTERACTION_LETTER
from fhir_server.fhir.messages import FhirRequest
from fhir_server.fhir.read_limits import Pairs, ReadLimits
from fhir_server.fhir.routing import Interaction

ROLES = ("patient", "practitioner", "frontdesk", "admin")
# Words earlier versions used: booking's "staff" is the front desk.
LEGACY = {"staff": "frontdesk"}

_DIRECTORY = ("PractitionerRole", "Organization", "Location", "HealthcareService")
_ALL = "crusd"


@dataclass(frozen=True)
class Grant:
    """What one role may do with one resource type.

    `may` holds the permission letters (c create, r read, u update/patch,
    d delete, s search); the letters also in `mine` are limited to the
    caller's own records, found by the search parameter `narrow` whose value
    is any reference the caller acts through (`{me}`: their fhirUser and
    PractitionerRoles), their fhirUser alone (`{user}`) or its id (`{id}`).
    """

    may: str
    mine: str = ""
    narrow: tuple[str, str] | None = None


# What every clinic user reads: the directory, the Schedules and Slots, Communications.
_READS = {
    t: Grant("rs") for t in (*_DIRECTORY, "Practitioner", "Schedule", "Slot", "Communication")
}
TABLE: dict[str, dict[str, Grant]] = {
    "patient": {
        # The patient compartment (auth.policy) limits these to the patient's own.
        **_READS,
        "Patient": Grant("rsu"),
        "Appointment": Grant("crsud"),
        "AppointmentResponse": Grant("crs"),
        # A visit's records (`visits`), written by the server alone.
        "Encounter": Grant("rs"),
        "ChargeItem": Grant("rs"),
    },
    "practitioner": {
        **_READS,
        "Patient": Grant("rsu", "rsu", ("_has:Appointment:patient:actor", "{me}")),
        "Practitioner": Grant("rsu", "u", ("_id", "{id}")),
        "Appointment": Grant("crsud", "crsud", ("actor", "{me}")),
        "AppointmentResponse": Grant("crs", "crs", ("actor", "{me}")),
        "Communication": Grant("rs", "rs", ("recipient", "{me}")),
        "Schedule": Grant("rsu", "u", ("actor", "{me}")),
        # Their own hours and time off only (`PRACTITIONER_HOURS`, `refused_write`).
        "PractitionerRole": Grant("rsu", "u", ("practitioner", "{user}")),
        "Encounter": Grant("rs", "rs", ("participant", "{me}")),
    },
    "frontdesk": {
        **_READS,
        "Patient": Grant("crsu"),
        "Appointment": Grant("crsud"),
        "AppointmentResponse": Grant("crs"),
        "Encounter": Grant("rs"),
        "ChargeItem": Grant("rs"),
        "Measure": Grant("rs"),  # the report metrics ($evaluate-measure)
    },
    "admin": {"*": Grant(_ALL)},
}

# The roles whose writes are compared with the stored version (`refused_write`),
# and the types they may write.
WRITE_CHECKED = frozenset({"patient", "practitioner"})
WRITE_CHECKED_TYPES = frozenset(
    t for r in WRITE_CHECKED for t, g in TABLE[r].items() if set(g.may) & set("cu")
)

# Operation code -> the roles that may invoke it (the type's grant applies as well).
OPERATIONS: dict[str, frozenset[str]] = {
    "find": frozenset(ROLES),
    "hold": frozenset(ROLES),
    "book": frozenset(ROLES),
    "outside-availability": frozenset({"practitioner", "frontdesk", "admin"}),
    "generate-slots": frozenset({"practitioner", "admin"}),
    "status": frozenset({"admin"}),
    "push-subscription": frozenset({"patient", "admin"}),
    "match": frozenset(ROLES),  # candidates are searched within the caller's read limits
    "calendar-feed": frozenset({"patient", "practitioner", "admin"}),
    "evaluate-measure": frozenset({"frontdesk", "admin"}),  # reports: staff and admins only
}
# Operations that run the server itself (the admin console: accounts, SMART apps, signing
# keys, deliveries): an admin's token only, whatever its scopes; a backend service's too is
# refused, since no account stands behind it.
ADMIN_OPERATIONS = frozenset(
    {
        "users",
        "invite-user",
        "change-user",
        "apps",
        "register-app",
        "rotate-app-credentials",
        "remove-app",
        "signing-keys",
        "rotate-signing-key",
        "retry",
    }
)
# Operations that change stored data: they need the write letter whatever the method.
_CHANGING = frozenset({"hold", "book", "generate-slots", "push-subscription", "calendar-feed"})

# Patient fields only the clinic sets (a patient's write must leave them as stored).
PATIENT_PROTECTED = (
    "identifier",
    "active",
    "generalPractitioner",
    "managingOrganization",
    "link",
    "meta.security",
)
# What a practitioner may change in their own PractitionerRole (the rest is the clinic's).
PRACTITIONER_HOURS = frozenset({"availableTime", "notAvailable", "availabilityExceptions", "meta"})
# Appointment extensions only the booking engine sets.
ENGINE_EXTENSIONS = (
    "https://clinic-booking.example.org/fhir/StructureDefinition/booking-hold-expires",
    "https://clinic-booking.example.org/fhir/StructureDefinition/booking-outside-availability",
)

_SYSTEM_KINDS = frozenset({"search-system", "history-system", "operation-system"})


class Token(Protocol):
    """The claims `role_of` reads (auth.policy.TokenContext)."""

    @property
    def role(self) -> str | None: ...

    @property
    def patient(self) -> str | None: ...

    @property
    def fhir_user(self) -> str | None: ...

    @property
    def actors(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Verdict:
    """A role's answer: refused (with the reason) or allowed, maybe narrowed."""

    refusal: str | None = None
    narrowing: tuple[tuple[str, str], ...] = ()


def role_of(token: Token) -> str | None:
    """The token's role; None for a backend service (its scopes alone decide)."""
    claimed = token.role
    if claimed:
        return LEGACY.get(claimed, claimed)
    user = token.fhir_user or ""
    if token.patient or user.startswith("Patient/"):
        return "patient"
    if user.startswith(("Practitioner/", "PractitionerRole/")):
        return "practitioner"
    return None


def booking_role(token: Token) -> str:
    """The role the booking engine applies: a backend service acts for the clinic."""
    return role_of(token) or "frontdesk"


def judge(token: Token, asked: Interaction, request: FhirRequest) -> Verdict:
    """May this token's role do this interaction, and on which records?"""
    operation = asked.operation
    role = role_of(token)
    if operation in ADMIN_OPERATIONS and role != "admin":
        return Verdict(f"${operation} is for admins only.")
    if role is None or role == "admin":
        return Verdict()
    if asked.kind in _SYSTEM_KINDS:
        return Verdict(f"A {role} cannot use system-wide interactions.")
    rtype = asked.resource_type
    if rtype is None or asked.kind in ("conformance", "batch", "invalid"):
        return Verdict()
    if operation is not None and role not in OPERATIONS.get(operation, frozenset()):
        return Verdict(f"A {role} cannot use ${operation}.")
    grant = _grant(role, rtype)
    letter = _letter(asked, operation)
    if grant is None or letter not in grant.may:
        return Verdict(f"A {role} cannot {_VERB[letter]} {rtype} resources.")
    if letter not in grant.mine or grant.narrow is None:
        return Verdict()
    if asked.conditional or asked.kind == "history-type":
        return Verdict(f"A {role} can only reach their own {rtype} resources one by one.")
    if letter in "rs":
        return Verdict()  # reads are cut by `read_limits`, checked on the way out
    name, value = _narrowing(token, grant.narrow)
    if name == "_id" and asked.rid not in (None, value):
        return Verdict(f"A {role} can only change their own {rtype}.")
    if letter == "c" and not set(_mine(token)) & _references(request.body):
        return Verdict(f"A {role} can only create {rtype} resources that name them.")
    return Verdict(narrowing=((name, value),))


_VERB = {"c": "create", "r": "read", "u": "change", "d": "delete", "s": "search"}


def _narrowing(token: Token, narrow: tuple[str, str]) -> tuple[str, str]:
    name, template = narrow
    me = token.fhir_user or ""
    mine = ",".join(_mine(token))
    return name, template.format(me=mine, user=me or mine, id=me.rpartition("/")[2])


def _mine(token: Token) -> tuple[str, ...]:
    """The references a user acts through: their fhirUser and, for a practitioner,
    their PractitionerRoles (looked up by the edge, `auth.role_checks`)."""
    return token.actors or ((token.fhir_user,) if token.fhir_user else ("Practitioner/unlinked",))


def _grant(role: str, rtype: str) -> Grant | None:
    table = TABLE.get(role, {})
    return table.get(rtype) or table.get("*")


def _letter(asked: Interaction, operation: str | None) -> str:
    if operation is None:
        return INTERACTION_LETTER.get(asked.kind, "r")
    if operation not in _CHANGING:
        return "r"
    return "u" if asked.rid else "c"


def _references(value: Any) -> set[str]:
    """Every `Type/id` a JSON value's literal references point at."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            reference = item.get("reference")
            key = reference_key(reference) if isinstance(reference, str) else None
            if key:
                found.add(key)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


D = TypeVar("D")


def applied(decision: D, verdict: Verdict) -> D:
    """The scope decision with the role's refusal or narrowing added.

    `decision` is an `auth.policy.Decision` (typed loosely to keep this
    module below the policy): a refusal replaces it with a 403; a narrowing
    joins the criteria the resource an instance-level request names must
    match (searches are narrowed by `read_limits`).
    """
    if not getattr(decision, "allowed", False) or not (verdict.refusal or verdict.narrowing):
        return decision
    if verdict.refusal:
        return replace(decision, status=403, reason=verdict.refusal)  # type: ignore[type-var]
    narrowed = (*getattr(decision, "scope_params", ()), *verdict.narrowing)
    return replace(decision, scope_params=narrowed)  # type: ignore[type-var]


def read_limits(token: Token, limits: ReadLimits) -> ReadLimits:
    """The scopes' read limits cut to the role's: a type the role may not read is
    dropped; a type it reads only where its own gets the narrowing criteria (checked
    by a query on every way out, like a scope's `?param=` restriction)."""
    role = role_of(token)
    if role is None or role == "admin":
        return limits
    criteria: dict[str, Pairs] = {}
    scoped = set(limits.scoped)
    for rtype, pairs in limits.criteria.items():
        grant = _grant(role, rtype)
        if grant is None or "r" not in grant.may:
            continue
        if "r" in grant.mine and grant.narrow is not None:
            pairs = (*pairs, _narrowing(token, grant.narrow))
            scoped.add(rtype)
        criteria[rtype] = pairs
    return replace(limits, criteria=criteria, scoped=frozenset(scoped))


# -- writes that compare the new version with the stored one ----------------------


def refused_write(
    token: Token, new: dict[str, Any], old: dict[str, Any] | None, previous: dict[str, Any] | None
) -> str | None:
    """Why this role may not write `new` over `old` (None: it may).

    `old` is the live stored version (None for a new or deleted id);
    `previous` is the last live version of a deleted id, which must have
    been the caller's own to be created again.
    """
    role = role_of(token)
    if role not in WRITE_CHECKED:
        return None
    if previous is not None and not _owned(token, role, previous):
        return f"{new.get('resourceType')}/{new.get('id')} belonged to another record."
    rtype = new.get("resourceType")
    if role == "practitioner" and rtype == "PractitionerRole":
        changed = sorted(
            f
            for f in set(new) | set(old or {})
            if f not in PRACTITIONER_HOURS and f != "id"
            if _at(new, f) != _at(old or {}, f)
        )
        return f"Only the clinic can change PractitionerRole.{changed[0]}." if changed else None
    if role != "patient":
        return None
    if rtype == "Patient":
        changed = [f for f in PATIENT_PROTECTED if _at(new, f) != _at(old or {}, f)]
        if changed:
            return f"Only the clinic can change Patient.{changed[0]}."
    if rtype == "Appointment":
        return _appointment_problem(token, new, old or {})
    return None


def _owned(token: Token, role: str, resource: dict[str, Any]) -> bool:
    if role == "patient":
        return bool(token.patient) and in_patient_compartment(resource, str(token.patient))
    me = token.fhir_user or ""
    if resource.get("resourceType") == me.partition("/")[0]:
        return resource.get("id") == me.rpartition("/")[2]
    return bool(set(_mine(token)) & _references(resource))


def _appointment_problem(token: Token, new: dict[str, Any], old: dict[str, Any]) -> str | None:
    for url in ENGINE_EXTENSIONS:
        if _extensions(new, url) != _extensions(old, url):
            return f"Only the booking engine sets the extension {url.rpartition('/')[2]}."
    mine = {f"Patient/{token.patient}"}
    before = _statuses(old)
    for actor, status in _statuses(new).items():
        if actor not in mine and status != before.get(actor, status if not old else None):
            return "A patient can answer only for themselves, not for another participant."
    return None


def _statuses(appointment: dict[str, Any]) -> dict[str, Any]:
    return {
        str((p.get("actor") or {}).get("reference")): p.get("status")
        for p in appointment.get("participant") or []
        if isinstance(p, dict)
    }


def _extensions(resource: dict[str, Any], url: str) -> list[Any]:
    return [e for e in resource.get("extension") or [] if e.get("url") == url]


def _at(resource: dict[str, Any], path: str) -> bytes:
    value: Any = resource
    for step in path.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
