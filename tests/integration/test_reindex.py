"""`fhir-server reindex` on the real embedded store: rows indexed before a search parameter
existed are found by it afterwards, a row written meanwhile keeps the index of its own write,
a wrong `--type` changes nothing, and start-up warns only when the stored definitions differ."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_server.app import create_app
from fhir_server.cli import app as cli
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.settings import Settings
from fhir_server.store import markers, reindex
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore
from tests.integration.auth_helpers import BASE, cli_env

T = TypeVar("T")
runner = CliRunner()
PHONE, NEW_PHONE = "020 7946 0142", "+44 20 7946 0999"
KEY, NEW_KEY = "079460142", "079460999"  # their last 9 digits: the `match-telecom` tokens
STALE = "Search parameters changed since the data was indexed"


def _with_store(env: dict[str, str], work: Callable[[ResourceStore], Awaitable[T]]) -> T:
    """`work` on the CLI's database, through the store the server builds."""

    async def main() -> T:
        database = await connect(env["FHIR_MONGODB_URI"], env["FHIR_DATABASE"])
        try:
            return await work(ResourceStore(database, indexer=ResourceIndexer(BASE)))
        finally:
            await database.close()

    return asyncio.run(main())


def _patient(rid: str, phone: str | None = None) -> dict[str, Any]:
    telecom = [{"system": "phone", "value": phone}] if phone else []
    return {"resourceType": "Patient", "id": rid, "name": [{"family": rid}], "telecom": telecom}


async def _store_stale(store: ResourceStore) -> None:
    """Patients as a release without `match-telecom` left them: one with a phone, its index
    stripped of the parameter; one without; one deleted."""
    await store.update(_patient("ann", PHONE))
    await store.update(_patient("bob"))
    await store.update(_patient("gone", PHONE))
    await store.delete("Patient", "gone")
    unset = {"$unset": {"idx.m.match-telecom": "", "idx.o.match-telecom": ""}}
    await store.collection("Patient").update_one({"_id": "ann"}, unset)


async def _telecom_index(store: ResourceStore) -> Any:
    row = await store.collection("Patient").find_one({"_id": "ann"})
    return row["idx"]["m"].get("match-telecom")


async def _marker(store: ResourceStore) -> dict[str, Any] | None:
    return await markers.read(store, reindex.MARKER)


@pytest.fixture
def env(settings_factory: Callable[..., Settings]) -> dict[str, str]:
    return cli_env(settings_factory)


@pytest.fixture
def server(
    settings_factory: Callable[..., Settings], env: dict[str, str]
) -> Callable[[], Iterator[TestClient]]:
    """Start (and stop) the app on the CLI's database; each call is a server start-up."""

    def start() -> Iterator[TestClient]:
        settings = settings_factory(database=env["FHIR_DATABASE"])
        with TestClient(create_app(settings)) as client:
            yield client

    return start


def _found(client: TestClient, key: str) -> list[str]:
    response = client.get(f"/fhir/Patient?match-telecom={key}")
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def test_reindex_makes_rows_stored_before_a_parameter_searchable(
    env: dict[str, str], server: Callable[[], Iterator[TestClient]]
) -> None:
    _with_store(env, _store_stale)
    for client in server():
        assert _found(client, KEY) == []

    result = runner.invoke(cli, ["reindex", "--type", "Patient", "--batch", "1"], env=env)
    assert result.exit_code == 0, result.output
    progress = result.stderr.splitlines()
    assert progress[0].startswith("Patient: 1/2 rows, 1 changed, 0 skipped, ")
    assert progress[1].startswith("Patient: 2/2 rows, 1 changed, 0 skipped, ")
    assert all(line.endswith("rows/s") for line in progress)
    assert "Patient: 2/2 rows, 1 changed, 0 skipped" in result.stdout
    assert "Reindexed 2 rows of 1 type in " in result.stdout
    assert "1 changed, 0 skipped (written meanwhile" in result.stdout
    for client in server():
        assert _found(client, KEY) == ["ann"]

    again = runner.invoke(cli, ["reindex", "--type", "Patient"], env=env)
    assert again.exit_code == 0, again.output
    assert "Patient: 2/2 rows, 0 changed, 0 skipped" in again.stdout  # nothing left to rewrite


def test_a_row_written_meanwhile_keeps_the_index_of_its_own_write(env: dict[str, str]) -> None:
    async def scenario(store: ResourceStore) -> reindex.TypeProgress:
        await _store_stale(store)

        async def concurrent_write(ids: list[str]) -> None:
            assert ids == ["ann"]  # only the stale row is rewritten
            await store.update(_patient("ann", NEW_PHONE))

        return await reindex.reindex_type(store, "Patient", before_write=concurrent_write)

    counts = _with_store(env, scenario)
    assert (counts.total, counts.done, counts.changed, counts.skipped) == (2, 2, 0, 1)
    telecom = _with_store(env, _telecom_index)
    assert NEW_KEY in telecom and KEY not in telecom  # not the index of the version read


def test_an_unknown_type_is_a_usage_error_naming_the_valid_ones(env: dict[str, str]) -> None:
    _with_store(env, _store_stale)
    result = runner.invoke(cli, ["reindex", "--type", "Patient", "--type", "Nope"], env=env)
    assert result.exit_code == 2, result.output
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # as one line, unboxed
    assert "Nope: not a stored type" in said
    assert f"Valid types: {', '.join(reindex.INDEXED_TYPES)}." in said
    assert _with_store(env, _telecom_index) is None  # nothing rewritten
    assert _with_store(env, _marker) is None  # nor recorded


@pytest.fixture
def start_up(
    server: Callable[[], Iterator[TestClient]], caplog: pytest.LogCaptureFixture
) -> Callable[[], list[str]]:
    """Start the server once; the stale-index warnings it logged."""

    def start() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            for _client in server():
                pass
        return [r.getMessage() for r in caplog.records if STALE in r.getMessage()]

    return start


def test_start_up_warns_once_when_the_definitions_differ(
    env: dict[str, str], start_up: Callable[[], list[str]]
) -> None:
    assert start_up() == []  # a fresh database: recorded, no warning
    recorded = _with_store(env, _marker)
    assert recorded is not None
    assert set(recorded["types"]) == set(reindex.INDEXED_TYPES)

    async def older_release(store: ResourceStore) -> None:
        await markers.write(store, reindex.MARKER, {"types": {**recorded["types"], "Patient": "0"}})

    _with_store(env, older_release)
    warned = start_up()
    assert len(warned) == 1 and "(Patient)" in warned[0] and "fhir-server reindex" in warned[0]

    assert runner.invoke(cli, ["reindex", "--type", "Patient"], env=env).exit_code == 0
    assert start_up() == []


def test_data_indexed_before_fingerprints_were_kept_warns(
    env: dict[str, str], start_up: Callable[[], list[str]]
) -> None:
    _with_store(env, _store_stale)
    warned = start_up()
    assert len(warned) == 1 and "(Patient)" in warned[0]
    assert _with_store(env, _marker) is None  # it keeps warning until reindexed
