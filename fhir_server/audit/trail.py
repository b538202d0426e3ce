"""What an interaction touched, read off the gate's account of it (pure).

The gate (`auth.access`) hands every interaction to `AuditRecorder.watch`,
which asks this module for the `Access` to record: the resource the URL
names, every stored resource the answer carries once filtered (the gate's
`Passage.returned`: search matches and includes, history entries, operation
outputs, a write's result or its `Location`), the patients those belong to,
the query as sent, and the operation's name. A refusal names what the gate
withheld (`Withholding`: the stored resource the URL or an operation's input
named, which the token may not reach or act on) and its patients the same
way, so "who tried to see this patient's data" is the same search as "who
saw it". A `$export` kick-off names the job it started. Nothing is looked up
in the store: the facts are at hand, so recording costs microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from fhir_server.audit.context import client_address
from fhir_server.audit.events import Access, Actor
from fhir_server.auth.compartment import reference_key
from fhir_server.auth.policy import TokenContext
from fhir_server.fhir.errors import Forbidden, NotFound
from fhir_server.fhir.messages import FhirRequest, FhirResponse

# A literal reference to a Patient, relative or absolute, with or without a version.
_PATIENT_REFERENCE = re.compile(
    rb'"reference":"(?:[^"]*/)?(Patient/[A-Za-z0-9\-.]{1,64})(?:/_history/[^"]*)?"'
)


class Seen(Protocol):
    """What the gate let out (`auth.access.Passage`)."""

    @property
    def response(self) -> FhirResponse: ...

    @property
    def returned(self) -> tuple[str, ...]:
        """`Type/id` of every stored resource the answer carries."""
        ...


@dataclass
class Withholding:
    """What a refusal of the gate withheld: the stored resource(s) the request named, as the
    gate read them, so the refusal's AuditEvent names them and their patients. Only the
    error's diagnostics leave the server."""

    # Not in the error's repr: what was withheld must not reach a log by way of a traceback.
    withheld: tuple[dict[str, Any], ...] = field(default=(), kw_only=True, repr=False)


@dataclass
class Withheld(NotFound, Withholding):
    """404 for a stored resource the token may not reach (another patient's, or outside the
    role's own records)."""


@dataclass
class WithheldForbidden(Forbidden, Withholding):
    """403 for an interaction the token's scopes or role do not allow, on a stored resource."""


def actor_of(ctx: TokenContext) -> Actor:
    return Actor(
        user=ctx.fhir_user,
        username=ctx.sub,
        client_id=ctx.client_id,
        role=ctx.role,
        address=client_address.get(),
    )


def _patient_references(body: dict[str, Any]) -> list[str]:
    """`Patient/id` of every reference in an answer, in one pass over its JSON text: walking
    the dicts of a 20-entry search in Python costs about 120 us, this about 15."""
    return sorted({m.decode() for m in _PATIENT_REFERENCE.findall(orjson.dumps(body))})


def _patients_of(keys: Iterable[str], body: dict[str, Any] | None) -> list[str]:
    """The patients an answer, or a withheld resource, belongs to: the Patients among the
    stored resources it carries (`keys`) and every Patient its JSON references."""
    found = [key for key in keys if key.startswith("Patient/")]
    return found + (_patient_references(body) if body is not None else [])


def _started_job(req: FhirRequest, seen: Seen | None) -> str | None:
    """The id of the bulk export a `$export` kick-off started: the last segment of the
    status URL it answered in `Content-Location`."""
    if seen is None or req.interaction.operation != "export" or seen.response.status != 202:
        return None
    location = seen.response.headers.get("Content-Location")
    return location.rstrip("/").rsplit("/", 1)[-1] if location else None


def _removed(body: dict[str, Any]) -> list[str]:
    """`Type/id` of the history entries that are deletions (no resource, only a URL)."""
    if body.get("resourceType") != "Bundle":
        return []
    return [
        key
        for e in body.get("entry") or ()
        if "resource" not in e and (key := reference_key(str(e.get("fullUrl", ""))))
    ]


def access_of(
    req: FhirRequest,
    status: int,
    seen: Seen | None,
    detail: str | None,
    withheld: tuple[dict[str, Any], ...] = (),
) -> Access:
    interaction = req.interaction
    named: dict[str, None] = {}  # an ordered set
    if interaction.resource_type and interaction.rid:
        named[f"{interaction.resource_type}/{interaction.rid}"] = None
    patients: dict[str, None] = {}
    body = seen.response.resource if seen is not None else None
    if seen is not None and interaction.kind != "batch":  # entries are recorded one by one
        named.update(dict.fromkeys(seen.returned))
        patients.update(dict.fromkeys(_patients_of(seen.returned, body)))
        if body is not None:
            named.update(dict.fromkeys(_removed(body)))
    for resource in withheld:
        key = f"{resource.get('resourceType')}/{resource.get('id')}"
        named[key] = None
        patients.update(dict.fromkeys(_patients_of([key], resource)))
    operation = f"${interaction.operation}" if interaction.operation else None
    if interaction.kind == "batch" and isinstance(req.body, dict):
        operation = str(req.body.get("type"))
    return Access(
        kind=interaction.kind,
        status=status,
        resources=tuple(named),
        patients=tuple(patients),
        query=urlencode(req.params) if req.params else req.header("if-none-exist"),
        operation=operation,
        detail=detail,
        job=_started_job(req, seen),
    )
