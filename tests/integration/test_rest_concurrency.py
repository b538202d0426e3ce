"""Version checks under concurrency: one writer wins, the rest get 409/412, history stays whole."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.fhir.errors import Conflict, PreconditionFailed
from fhir_server.store.resources import ResourceStore
from tests.integration.rest_support import create, put, services


def test_concurrent_if_match_updates_have_one_winner(client: TestClient) -> None:
    created = create(client)

    def attempt(n: int) -> int:
        body = {**created, "gender": ["male", "other"][n % 2]}
        return put(client, body, **{"if-match": 'W/"1"'}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, range(16)))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409, 412}
    history = client.get(f"/fhir/Patient/{created['id']}/_history").json()
    assert history["total"] == 2


async def _race(store: ResourceStore, resource: dict[str, Any], expected: int | None) -> list[str]:
    async def one() -> str:
        try:
            await store.update(resource, expected_version=expected)
        except (Conflict, PreconditionFailed) as error:
            return type(error).__name__
        return "ok"

    return list(await asyncio.gather(*(one() for _ in range(10))))


@pytest.mark.parametrize("expected", [1, None])
def test_store_writers_racing(client: TestClient, expected: int | None) -> None:
    """Ten concurrent writers: with If-Match 1 exactly one wins; unconditional writers that
    lose a race are refused (409), never silently overwritten, and versions stay gapless."""
    created = create(client)
    assert client.portal is not None
    outcomes = client.portal.call(_race, services(client).store, created, expected)
    wins = outcomes.count("ok")
    assert wins == 1 if expected else wins >= 1, outcomes
    assert set(outcomes) <= {"ok", "Conflict", "PreconditionFailed"}
    history = client.get(f"/fhir/Patient/{created['id']}/_history").json()
    versions = sorted(int(e["resource"]["meta"]["versionId"]) for e in history["entry"])
    assert versions == list(range(1, wins + 2))
