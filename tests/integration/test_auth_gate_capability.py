"""Every interaction and operation the server offers, driven against another patient's data.

The requests are generated from the CapabilityStatement at run time (each
resource's interactions, search parameters, includes and revincludes, each
operation at each level its OperationDefinition names, the system
interactions), so an operation or interaction is covered the day it is
registered. Each is sent with a token that must not see patient B's data
(patient A's token; a practitioner and a backend token without access to
Patient or AppointmentResponse) and the answer, body and headers, must carry
none of B's data that the request did not itself name. A control run with a
token that sees everything proves the requests do reach B's data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.scheduling.extensions import OUTSIDE_AVAILABILITY
from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, auth_app, bearer, create, mint

WINDOW = ("2030-01-01T00:00:00Z", "2030-12-31T00:00:00Z")


@dataclass(frozen=True)
class Probe:
    method: str
    url: str  # relative to BASE
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return self.url + json.dumps(self.body) + json.dumps(self.headers)


@dataclass
class World:
    alice: str
    bob_ids: dict[str, list[str]]  # B's resources by type
    secrets: dict[str, str]  # text only B's resources hold -> the type holding it
    # B's resources of a type are referenced by B's resources of these types
    referenced_by: dict[str, set[str]] = field(default_factory=dict)

    def markers(self, hidden_types: set[str]) -> set[str]:
        """B's data a token that may not read `hidden_types` must never get: their texts,
        and their ids unless a resource it may read refers to them."""
        ids = {
            i
            for t, ids in self.bob_ids.items()
            if t in hidden_types and self.referenced_by.get(t, set()) <= hidden_types
            for i in ids
        }
        return ids | {s for s, t in self.secrets.items() if t in hidden_types}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


@pytest.fixture(scope="module")
def world(client: TestClient) -> World:
    alice = create(client, {"resourceType": "Patient", "name": [{"family": "Alison"}]})
    bob = create(
        client,
        {"resourceType": "Patient", "name": [{"family": "Zqbobfamily"}], "birthDate": "1971-07-17"},
    )
    doctor = create(client, {"resourceType": "Practitioner", "name": [{"family": "Shared"}]})
    schedule = create(
        client, {"resourceType": "Schedule", "actor": [{"reference": f"Practitioner/{doctor}"}]}
    )
    slot = create(
        client,
        {
            "resourceType": "Slot",
            "status": "busy",
            "comment": "zq-bob-slot-note",
            "schedule": {"reference": f"Schedule/{schedule}"},
            "start": "2030-03-03T09:00:00Z",
            "end": "2030-03-03T09:30:00Z",
        },
    )
    appointment = create(
        client,
        {
            "resourceType": "Appointment",
            "status": "booked",
            "description": "zq-bob-hiv-follow-up",
            "extension": [{"url": OUTSIDE_AVAILABILITY, "valueBoolean": True}],
            "slot": [{"reference": f"Slot/{slot}"}],
            "start": "2030-03-03T09:00:00Z",
            "end": "2030-03-03T09:30:00Z",
            "participant": [
                {"actor": {"reference": f"Patient/{bob}"}, "status": "accepted"},
                {"actor": {"reference": f"Practitioner/{doctor}"}, "status": "accepted"},
            ],
        },
    )
    response = create(
        client,
        {
            "resourceType": "AppointmentResponse",
            "appointment": {"reference": f"Appointment/{appointment}"},
            "actor": {"reference": f"Patient/{bob}"},
            "participantStatus": "accepted",
            "comment": "zq-bob-response-note",
        },
    )
    message = create(
        client,
        {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": f"Patient/{bob}"},
            "recipient": [{"reference": f"Patient/{bob}"}],
            "payload": [{"contentString": "zq-bob-message-text"}],
        },
    )
    encounter = create(
        client,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{bob}"},
            "appointment": [{"reference": f"Appointment/{appointment}"}],
            "reasonCode": [{"text": "zq-bob-encounter-reason"}],
        },
    )
    charge = create(
        client,
        {
            "resourceType": "ChargeItem",
            "status": "billable",
            "code": {"text": "zq-bob-charge-code"},
            "subject": {"reference": f"Patient/{bob}"},
            "context": {"reference": f"Encounter/{encounter}"},
        },
    )
    return World(
        alice=alice,
        bob_ids={
            "Patient": [bob],
            "Appointment": [appointment],
            "AppointmentResponse": [response],
            "Communication": [message],
            "Slot": [slot],
            "Encounter": [encounter],
            "ChargeItem": [charge],
        },
        secrets={
            "Zqbobfamily": "Patient",
            "1971-07-17": "Patient",
            "zq-bob-hiv-follow-up": "Appointment",
            "zq-bob-response-note": "AppointmentResponse",
            "zq-bob-message-text": "Communication",
            "zq-bob-slot-note": "Slot",
            "zq-bob-encounter-reason": "Encounter",
            "zq-bob-charge-code": "ChargeItem",
        },
        referenced_by={
            "Patient": {
                "Appointment",
                "AppointmentResponse",
                "Communication",
                "Encounter",
                "ChargeItem",
            },
            "Appointment": {"AppointmentResponse", "Encounter"},
            "Slot": {"Appointment"},
            "Encounter": {"ChargeItem"},
        },
    )


# -- the probes, from the CapabilityStatement ------------------------------------------------


def _value(type_: str, world: World) -> Any:
    """A value for a search or operation input that points at B where it can."""
    bob = world.bob_ids["Patient"][0]
    return {
        "reference": f"Patient/{bob}",
        "Reference": {"reference": f"Patient/{bob}"},
        "date": "1971-07-17",
        "dateTime": WINDOW[0],
        "token": "booked",
        "string": bob,
        "id": bob,
        "integer": "10",
        "number": "10",
        "uri": f"Patient/{bob}",
        "url": f"Patient/{bob}",
    }.get(type_, bob)


def _target_ids(rtype: str, world: World) -> list[str]:
    return world.bob_ids.get(rtype) or world.bob_ids["Patient"]


def _resource_probes(entry: dict[str, Any], world: World) -> list[Probe]:
    rtype = entry["type"]
    codes = {i["code"] for i in entry.get("interaction", [])}
    probes: list[Probe] = []
    for rid in _target_ids(rtype, world):
        if "read" in codes:
            probes.append(Probe("GET", f"{rtype}/{rid}"))
        if "vread" in codes:
            probes.append(Probe("GET", f"{rtype}/{rid}/_history/1"))
        if "history-instance" in codes:
            probes.append(Probe("GET", f"{rtype}/{rid}/_history"))
        if "patch" in codes:
            probes.append(
                Probe(
                    "PATCH", f"{rtype}/{rid}", [], {"Content-Type": "application/json-patch+json"}
                )
            )
        if "update" in codes:
            probes.append(Probe("PUT", f"{rtype}/{rid}", {"resourceType": rtype, "id": rid}))
    if "history-type" in codes:
        probes.append(Probe("GET", f"{rtype}/_history"))
    if "create" in codes:
        condition = {"If-None-Exist": "_lastUpdated=gt2000-01-01", "Prefer": "return=minimal"}
        probes.append(Probe("POST", rtype, {"resourceType": rtype}, condition))
    if "update" in codes:
        probes.append(Probe("PUT", f"{rtype}?_lastUpdated=gt2000-01-01", {"resourceType": rtype}))
    if "search-type" in codes:
        probes += _search_probes(entry, world)
    return probes


def _search_probes(entry: dict[str, Any], world: World) -> list[Probe]:
    rtype = entry["type"]
    queries = [""]
    for param in entry.get("searchParam", []):
        queries.append(f"{param['name']}={_value(param['type'], world)}")
    for include in entry.get("searchInclude", []):
        queries.append(f"_include:iterate={include}")
    for revinclude in entry.get("searchRevInclude", []):
        source, _, code = revinclude.partition(":")
        queries += [
            f"_revinclude:iterate={revinclude}&_include=*",
            f"_has:{source}:{code}:_lastUpdated=gt2000-01-01",
        ]
    probes = [Probe("GET", f"{rtype}?{q}") for q in queries]
    probes.append(Probe("POST", f"{rtype}/_search"))
    return probes


def _operation_probes(
    client: TestClient, headers: dict[str, str], rtype: str | None, canonical: str, world: World
) -> list[Probe]:
    definition = client.get(
        f"{BASE}/OperationDefinition/{canonical.rsplit('/', 1)[-1]}", headers=headers
    ).json()
    code = definition["code"]
    inputs = [p for p in definition.get("parameter", []) if p["use"] == "in"]
    bob = world.bob_ids["Patient"][0]
    parameters: list[dict[str, Any]] = []
    for p in inputs:
        if p["type"][:1].isupper() and p["type"] not in ("Reference",):
            resource = {"resourceType": p["type"], "status": "proposed", "participant": []}
            resource["participant"] = [{"actor": {"reference": f"Patient/{bob}"}}]
            parameters.append({"name": p["name"], "resource": resource})
        elif p["type"] == "Reference":
            parameters.append({"name": p["name"], "valueReference": _value("Reference", world)})
        else:
            value = WINDOW[1] if p["name"] == "end" else _value(p["type"], world)
            key = f"value{p['type'][0].upper()}{p['type'][1:]}"
            parameters.append({"name": p["name"], key: value})
    body = {"resourceType": "Parameters", "parameter": parameters}
    query = f"start={WINDOW[0]}&end={WINDOW[1]}"
    paths = []
    if definition.get("system"):
        paths.append(f"${code}")
    if rtype and definition.get("type"):
        paths.append(f"{rtype}/${code}")
    if rtype and definition.get("instance"):
        paths += [f"{rtype}/{rid}/${code}" for rid in _target_ids(rtype, world)]
    return [
        p for path in paths for p in (Probe("GET", f"{path}?{query}"), Probe("POST", path, body))
    ]


def probes(client: TestClient, headers: dict[str, str], world: World) -> list[Probe]:
    statement = client.get(f"{BASE}/metadata").json()
    rest = statement["rest"][0]
    out: list[Probe] = []
    for entry in rest["resource"]:
        out += _resource_probes(entry, world)
        for operation in entry.get("operation", []):
            out += _operation_probes(client, headers, entry["type"], operation["definition"], world)
    for operation in rest.get("operation", []):
        out += _operation_probes(client, headers, None, operation["definition"], world)
    system = {i["code"] for i in rest.get("interaction", [])}
    if "history-system" in system:
        out.append(Probe("GET", "_history"))
    for entry in rest["resource"]:
        out.append(Probe("GET", f"?_type={entry['type']}"))
    reads = [p for p in out if p.method == "GET"][:60]
    for kind in ("batch", "transaction") if system & {"batch", "transaction"} else ():
        entries = [{"request": {"method": "GET", "url": p.url}} for p in reads]
        out.append(Probe("POST", "", {"resourceType": "Bundle", "type": kind, "entry": entries}))
    return out


# -- running them ------------------------------------------------------------------------------


def _send(client: TestClient, probe: Probe, headers: dict[str, str]) -> Any:
    sent = {"Content-Type": "application/fhir+json", **headers, **probe.headers}
    content = None if probe.body is None else json.dumps(probe.body)
    url = f"{BASE}/{probe.url}" if probe.url else BASE
    return client.request(probe.method, url, content=content, headers=sent)


def _run(
    client: TestClient, world: World, headers: dict[str, str], markers: set[str]
) -> tuple[list[str], set[str]]:
    """(problems, markers seen) over every probe."""
    problems: list[str] = []
    seen: set[str] = set()
    for probe in probes(client, headers, world):
        response = _send(client, probe, headers)
        if response.status_code >= 500:
            problems.append(f"{probe.method} {probe.url}: {response.status_code}")
        answer = response.text + json.dumps(dict(response.headers))
        found = {m for m in markers if m in answer and m not in probe.text()}
        seen |= found
        if found:
            problems.append(f"{probe.method} {probe.url[:120]} -> {sorted(found)}")
    return problems, seen


VISITS = {"Encounter", "ChargeItem"}
PATIENT_HIDDEN = {"Patient", "Appointment", "AppointmentResponse", "Communication", "Slot", *VISITS}
TOKENS = {
    # A patient token of A: nothing of B, and no busy Slot.
    "patient": ("patient/*.cruds", PATIENT_HIDDEN),
    # A practitioner reading the schedule: no Patient, AppointmentResponse or Communication.
    "practitioner": (
        "user/Appointment.rs user/Practitioner.rs user/Schedule.rs user/Slot.rs",
        {"Patient", "AppointmentResponse", "Communication", *VISITS},
    ),
    # A backend that syncs availability: no patient data at all.
    "backend": (
        "system/Slot.rs system/Schedule.rs",
        {"Patient", "Appointment", "AppointmentResponse", "Communication", *VISITS},
    ),
}


def _token(client: TestClient, world: World, who: str) -> dict[str, str]:
    scope, _ = TOKENS[who]
    if who == "patient":
        return bearer(mint(client, scope, patient=world.alice, fhir_user=f"Patient/{world.alice}"))
    return bearer(
        mint(client, scope, fhir_user="Practitioner/someone" if who != "backend" else None)
    )


def test_the_probes_reach_b_s_data_with_a_token_that_may_see_it(
    client: TestClient, world: World
) -> None:
    """The control: the same requests with a user/*.rs token do show all of B's data."""
    markers = world.markers(PATIENT_HIDDEN)
    _, seen = _run(client, world, bearer(mint(client, "user/*.rs")), markers)
    assert seen == markers


@pytest.mark.parametrize("who", sorted(TOKENS))
def test_no_interaction_or_operation_shows_b_s_data(
    client: TestClient, world: World, who: str
) -> None:
    _, hidden = TOKENS[who]
    problems, _ = _run(client, world, _token(client, world, who), world.markers(hidden))
    assert problems == []
