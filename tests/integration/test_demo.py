"""The demo clinic: valid, self-consistent data, and a loader that never adds versions twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from fhir_server.demo import DemoSummary, load_demo
from fhir_server.demo.clinic import TIMEZONE_EXTENSION, demo_resources
from fhir_server.fhir.validation import validate_resource
from fhir_server.settings import Settings
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore

T = TypeVar("T")
RESOURCES = demo_resources()
BY_KEY = {f"{r['resourceType']}/{r['id']}": r for r in RESOURCES}


def _of_type(resource_type: str) -> list[dict[str, Any]]:
    return [r for r in RESOURCES if r["resourceType"] == resource_type]


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _zone(resource: dict[str, Any]) -> str:
    (zone,) = [e["valueCode"] for e in resource["extension"] if e["url"] == TIMEZONE_EXTENSION]
    return str(zone)


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_every_demo_resource_is_valid(key: str) -> None:
    validate_resource(BY_KEY[key])


def test_the_clinic_has_what_the_issue_asks_for() -> None:
    counts = {t: len(_of_type(t)) for t in {r["resourceType"] for r in RESOURCES}}
    assert counts == {
        "Organization": 1,
        "Location": 2,
        "Practitioner": 3,
        "PractitionerRole": 3,
        "HealthcareService": 3,
        "Schedule": 3,
        "Patient": 2,
    }
    assert len(BY_KEY) == len(RESOURCES), "ids repeat within a type"


def test_every_reference_points_into_the_demo_clinic() -> None:
    for resource in RESOURCES:
        for reference in _references(resource):
            assert reference in BY_KEY, f"{resource['id']} refers to unknown {reference}"


def test_locations_sit_in_two_time_zones_with_address_and_hours() -> None:
    locations = _of_type("Location")
    zones = {_zone(location) for location in locations}
    assert zones == {"America/New_York", "Europe/London"}
    for zone in zones:
        ZoneInfo(zone)  # a real IANA name
    for location in locations:
        assert location["address"]["country"] and location["address"]["state"]
        hours = location["hoursOfOperation"][0]
        assert hours["openingTime"] < hours["closingTime"]


def test_schedules_name_a_role_a_location_and_a_service() -> None:
    for schedule in _of_type("Schedule"):
        kinds = sorted(ref.split("/")[0] for ref in _references(schedule["actor"]))
        assert kinds == ["HealthcareService", "Location", "PractitionerRole"]
        role = BY_KEY[schedule["actor"][0]["reference"]]
        location = BY_KEY[schedule["actor"][1]["reference"]]
        assert schedule["actor"][1] in role["location"], "schedule location is not the role's"
        assert _zone(schedule) == _zone(location)


def test_roles_have_hours_and_patients_can_be_contacted() -> None:
    for role in _of_type("PractitionerRole"):
        hours = role["availableTime"][0]
        assert hours["daysOfWeek"] and hours["availableStartTime"] < hours["availableEndTime"]
    for patient in _of_type("Patient"):
        assert {t["system"] for t in patient["telecom"]} == {"phone", "email"}


def _with_store(settings: Settings, work: Callable[[ResourceStore], Awaitable[T]]) -> T:
    async def run() -> T:
        assert settings.mongodb_uri
        database = await connect(settings.mongodb_uri, settings.database)
        try:
            return await work(ResourceStore(database))
        finally:
            await database.close()

    return asyncio.run(run())


async def _versions(store: ResourceStore) -> dict[str, tuple[int, str]]:
    found = {}
    for key, resource in BY_KEY.items():
        current = await store.current(resource["resourceType"], resource["id"])
        assert current is not None and current.resource is not None, key
        found[key] = (current.version, current.updated)
    return found


def _counts(summary: DemoSummary) -> tuple[int, int, int]:
    return summary.created, summary.updated, summary.unchanged


def test_loading_twice_changes_nothing(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    progress: list[tuple[int, int]] = []
    first = _with_store(settings, lambda store: load_demo(store, lambda *p: progress.append(p)))
    assert _counts(first) == (len(RESOURCES), 0, 0)
    assert progress[-1] == (len(RESOURCES), len(RESOURCES)) and len(progress) == len(RESOURCES)
    before = _with_store(settings, _versions)
    assert {version for version, _ in before.values()} == {1}

    second = _with_store(settings, load_demo)
    assert _counts(second) == (0, 0, len(RESOURCES))
    assert _with_store(settings, _versions) == before


def test_loading_puts_back_edited_and_deleted_resources(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    _with_store(settings, load_demo)
    edited = {**BY_KEY["Location/demo-location-nyc"], "name": "Renamed by someone"}

    async def tamper(store: ResourceStore) -> None:
        await store.update(edited)
        await store.delete("Practitioner", "demo-practitioner-priya-shah")

    _with_store(settings, tamper)
    repaired = _with_store(settings, load_demo)
    assert _counts(repaired) == (1, 1, len(RESOURCES) - 2)

    async def check(store: ResourceStore) -> None:
        location = await store.read("Location", "demo-location-nyc")
        assert location.version == 3
        assert location.resource is not None and location.resource["name"] != edited["name"]
        practitioner = await store.read("Practitioner", "demo-practitioner-priya-shah")
        assert practitioner.version == 3

    _with_store(settings, check)
