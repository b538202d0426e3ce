"""The worker's batched claim and settle: compare-and-set per message, sent marks."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_server.store.message_batches import MessageBatches
from fhir_server.store.resources import ResourceStore, Version


def _message(n: int) -> dict[str, Any]:
    return {"resourceType": "Communication", "status": "preparation", "payload": [{"n": n}]}


def _claims(versions: list[Version]) -> list[tuple[Version, dict[str, Any]]]:
    return [(v, {**(v.resource or {}), "status": "in-progress"}) for v in versions]


def test_of_two_claims_on_the_same_versions_only_the_first_wins(client: TestClient) -> None:
    store: ResourceStore = client.app.state.services.store  # type: ignore[attr-defined]

    async def body() -> tuple[list[Version], list[Version | None], list[Version | None]]:
        created = [await store.create(_message(n)) for n in range(3)]
        batches = MessageBatches(store)
        first = await batches.update_many(_claims(created))
        second = await batches.update_many(_claims(created))  # a second worker, same reads
        return created, first, second

    created, first, second = client.portal.call(body)  # type: ignore[union-attr]
    assert [v.version if v else None for v in first] == [2, 2, 2]
    assert second == [None, None, None]
    for version in created:
        current = client.portal.call(store.read, "Communication", version.id)  # type: ignore[union-attr]
        assert (current.version, (current.resource or {})["status"]) == (2, "in-progress")
        assert (current.resource or {})["meta"]["versionId"] == "2"


def test_a_claim_lost_to_a_plain_update_leaves_no_history_row(client: TestClient) -> None:
    store: ResourceStore = client.app.state.services.store  # type: ignore[attr-defined]

    async def body() -> tuple[list[Version | None], list[int]]:
        created = await store.create(_message(9))
        # Someone else writes version 2 through the store after the worker read version 1.
        await store.update({**(created.resource or {}), "status": "entered-in-error"})
        claims = await MessageBatches(store).update_many(_claims([created]))
        page = await store.history_page(resource_type="Communication", rid=created.id)
        return claims, sorted(row.version for row in page.rows)

    claims, versions = client.portal.call(body)  # type: ignore[union-attr]
    assert claims == [None]
    assert versions == [1, 2]


def test_sent_marks_are_found_and_forgotten(client: TestClient) -> None:
    store: ResourceStore = client.app.state.services.store  # type: ignore[attr-defined]
    batches = MessageBatches(store)

    async def body() -> tuple[set[str], set[str]]:
        await batches.mark_sent("m1")
        await batches.mark_sent("m1")  # marked again by a second attempt: no error
        found = await batches.sent_among(["m1", "m2"])
        await batches.forget_sent(["m1"])
        return found, await batches.sent_among(["m1", "m2"])

    found, after = client.portal.call(body)  # type: ignore[union-attr]
    assert found == {"m1"}
    assert after == set()
