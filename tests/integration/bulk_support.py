"""A bulk data client and its surroundings: an auth-enforcing app, Redis, a real worker.

`BulkClient` does what a Bulk Data Access 2.0 client does: kick off with
`Prefer: respond-async`, poll the `Content-Location` (checking the 202s'
`X-Progress` and `Retry-After`), read the manifest, download every file and
parse every NDJSON line, each checked as R4 JSON by the independent validator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications import celery_app
from fhir_server.settings import Settings
from fhir_server.store.resources import ResourceStore, first_row
from tests.fhir_conformance import problems
from tests.integration.auth_helpers import bearer, call, mint
from tests.integration.notify_support import Worker, short_tmp, start_redis

BACKEND = "system/*.rs"


@dataclass
class Rig:
    client: TestClient
    worker: Worker
    settings: Settings


def start_rig(make: Callable[..., Settings], **overrides: Any) -> Iterator[Rig]:
    """The app (auth on) and one worker sharing a private Redis and the test store."""
    folder = short_tmp()
    redis, url = start_redis(folder)
    settings = make(auth_enabled=True, redis_url=url, **overrides)
    worker = Worker(settings, folder)
    worker.start()
    try:
        with TestClient(create_app(settings)) as client:
            yield Rig(client, worker, settings)
    finally:
        worker.stop()
        celery_app.shut_down_redis(redis)


def store_of(client: TestClient) -> ResourceStore:
    store: ResourceStore = client.app.state.services.store  # type: ignore[attr-defined]
    return store


def insert(client: TestClient, resources: list[dict[str, Any]]) -> None:
    """Store first versions directly, one insert per type (setup speed, not under test)."""
    store = store_of(client)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    updated = "2024-01-01T00:00:00.000000Z"
    for rtype, group in by_type.items():
        rows = [first_row(r, store.indexer, updated) for r in group]
        call(client, store.collection(rtype).insert_many, rows)


def backend_token(
    client: TestClient, scope: str = BACKEND, client_id: str = "ehr"
) -> dict[str, str]:
    return bearer(mint(client, scope, client_id=client_id))


ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


class BulkClient:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def kick_off(self, path: str, **kw: Any) -> str:
        response = self.client.get(path, headers=self.headers | ASYNC, **kw)
        assert response.status_code == 202, response.text
        location: str = response.headers["content-location"]
        return location

    def wait(self, status_url: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll as a client does until the manifest comes; every 202 says how it goes."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.client.get(status_url, headers=self.headers)
            if response.status_code == 200:
                assert response.headers["content-type"].startswith("application/json")
                assert response.headers["expires"]
                manifest: dict[str, Any] = response.json()
                return manifest
            assert response.status_code == 202, response.text
            assert response.headers["x-progress"] and int(response.headers["retry-after"]) > 0
            assert time.monotonic() < deadline, "the export did not finish in time"
            time.sleep(0.1)

    def download(self, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Every output and error file, each line parsed and checked as an R4 resource."""
        files: dict[str, list[dict[str, Any]]] = {}
        for entry in manifest["output"] + manifest["error"]:
            response = self.client.get(entry["url"], headers=self.headers)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/fhir+ndjson")
            lines = response.content.decode().splitlines()
            resources = [orjson.loads(line) for line in lines]
            for resource in resources:
                assert resource["resourceType"] == entry["type"]
                assert problems(resource) == [], problems(resource)
            assert len(resources) == entry["count"]
            files[entry["type"]] = resources
        return files

    def export(self, path: str) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        manifest = self.wait(self.kick_off(path))
        return manifest, self.download(manifest)
