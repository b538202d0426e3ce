"""Instance, type and system history: `_since`, `_count` paging with next links."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.conftest import patient
from tests.integration.rest_support import assert_outcome, create, put


@pytest.fixture()
def fresh(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    """A client on an empty database, so history totals are exact."""
    with TestClient(create_app(settings_factory())) as test_client:
        yield test_client


def _pages(client: TestClient, url: str) -> list[dict[str, Any]]:
    """Follow next links to the end; every page must be a history Bundle."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["type"] == "history"
        pages.append(page)
        following = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = "" if not following else _relative(following[0])
        assert len(pages) < 50
    return pages


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _keys(pages: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['fullUrl']}@{e['response']['etag']}" for page in pages for e in page.get("entry", [])
    ]


def test_instance_history_newest_first(fresh: TestClient) -> None:
    created = create(fresh)
    put(fresh, {**created, "gender": "male"})
    history = fresh.get(f"/fhir/Patient/{created['id']}/_history").json()
    assert history["total"] == 2
    versions = [e["resource"]["meta"]["versionId"] for e in history["entry"]]
    assert versions == ["2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]
    assert history["entry"][1]["response"]["status"] == "201 Created"


def test_instance_history_of_unknown_is_404(fresh: TestClient) -> None:
    assert_outcome(fresh.get("/fhir/Patient/ghost/_history"), 404)


def test_type_and_system_history(fresh: TestClient) -> None:
    create(fresh)
    create(fresh)
    create(fresh, {"resourceType": "Organization", "name": "Clinic"})
    assert fresh.get("/fhir/Patient/_history").json()["total"] == 2
    assert fresh.get("/fhir/Organization/_history").json()["total"] == 1
    system = fresh.get("/fhir/_history").json()
    assert system["total"] == 3
    assert {e["resource"]["resourceType"] for e in system["entry"]} == {"Patient", "Organization"}


def test_paging_never_repeats_or_skips(fresh: TestClient) -> None:
    for _ in range(7):
        created = create(fresh)
        put(fresh, {**created, "gender": "male"})
    pages = _pages(fresh, "/fhir/_history?_count=3")
    keys = _keys(pages)
    assert len(keys) == 14
    assert len(set(keys)) == 14
    assert all(len(page["entry"]) <= 3 for page in pages)
    assert pages[-1]["entry"], "no trailing empty page"


def test_paging_is_stable_while_writes_arrive(fresh: TestClient) -> None:
    for _ in range(4):
        create(fresh)
    first = fresh.get("/fhir/Patient/_history?_count=2").json()
    create(fresh)  # newer than the first page: must not show up on later pages
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    rest = _pages(fresh, _relative(next_url))
    keys = _keys([first, *rest])
    assert len(keys) == 4 == len(set(keys))


def test_since_filters_older_versions(fresh: TestClient) -> None:
    old = create(fresh)
    newer = create(fresh)
    since = newer["meta"]["lastUpdated"]
    history = fresh.get("/fhir/Patient/_history", params={"_since": since}).json()
    assert [e["resource"]["id"] for e in history["entry"]] == [newer["id"]]
    assert old["id"] not in str(history)


def test_since_with_offset_and_paging_keeps_since(fresh: TestClient) -> None:
    first = create(fresh)
    for _ in range(3):
        create(fresh)
    since = first["meta"]["lastUpdated"].replace("Z", "+00:00")
    pages = _pages(fresh, f"/fhir/_history?_count=2&_since={since.replace('+', '%2B')}")
    assert len(_keys(pages)) == 4


def test_bad_history_parameters_are_400(fresh: TestClient) -> None:
    assert_outcome(fresh.get("/fhir/_history?_count=abc"), 400, "_count")
    assert_outcome(fresh.get("/fhir/_history?_since=yesterday"), 400, "_since")
    assert_outcome(fresh.get("/fhir/_history?_since=2020-01-01T00:00:00"), 400, "_since")
    assert_outcome(fresh.get("/fhir/_history?_before=nonsense"), 400, "_before")


def test_history_write_is_405(fresh: TestClient) -> None:
    assert_outcome(fresh.post("/fhir/_history", json=patient()), 405)
    assert_outcome(fresh.delete("/fhir/Patient/_history"), 405)


def test_count_zero_gives_the_total_only(fresh: TestClient) -> None:
    create(fresh)
    create(fresh)
    history = fresh.get("/fhir/Patient/_history?_count=0").json()
    assert history["total"] == 2
    assert "entry" not in history  # R4 JSON has no empty arrays
    assert [link["relation"] for link in history["link"]] == ["self"]


def test_count_above_the_maximum_is_capped(fresh: TestClient) -> None:
    for _ in range(3):
        create(fresh)
    history = fresh.get("/fhir/_history?_count=100000").json()
    assert len(history["entry"]) == 3
    assert "_count=500" in history["link"][0]["url"]
