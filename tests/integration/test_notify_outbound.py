"""Outbound calls to client-chosen URLs (rest-hook and web push endpoints), against real
sockets: private addresses refused at registration and at delivery, https only in
production, redirects not followed, and refusals to patients worded without network detail."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications.channels import outbound, push
from fhir_server.rest.services import Services
from fhir_server.settings import Settings
from fhir_server.store.outbox_store import OutboxStore
from tests.conftest import FHIR_JSON, patient

OPEN = outbound.Reach(frozenset({"127.0.0.1"}), https_only=False)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("100.64.0.1", False),  # shared address space (carrier-grade NAT)
        ("169.254.169.254", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:192.168.1.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:5", False),  # NAT64 of 10.0.0.5
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("224.0.0.1", False),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert outbound.is_public(ipaddress.ip_address(address)) is public


def test_production_takes_https_only() -> None:
    production = outbound.Reach(frozenset(), https_only=True)
    assert asyncio.run(outbound.endpoint_problem("http://push.example.org/x", production))
    with pytest.raises(outbound.Refused):
        outbound.post("http://push.example.org/x", b"", {}, production, timeout=1)


class _Receiver:
    """A local HTTP server that answers every POST with a redirect and records it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.paths.append(self.path)
                self.send_response(307)
                self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def receiver() -> Iterator[_Receiver]:
    running = _Receiver()
    yield running
    running.server.shutdown()


def test_redirects_are_not_followed(receiver: _Receiver) -> None:
    answer = outbound.post(f"http://127.0.0.1:{receiver.port}/hook", b"{}", {}, OPEN, 5)
    assert answer.status_code == 307
    assert receiver.paths.count("/hook") == 1 and "/elsewhere" not in receiver.paths


def test_a_name_resolving_to_this_host_is_refused_at_delivery(receiver: _Receiver) -> None:
    before = list(receiver.paths)
    with pytest.raises(outbound.Refused):
        outbound.post(f"http://localhost:{receiver.port}/rebound", b"{}", {}, OPEN, 5)
    assert receiver.paths == before


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_factory())) as app_client:
        yield app_client


def test_push_registration_refuses_private_endpoints_in_plain_words(client: TestClient) -> None:
    headers = {"content-type": FHIR_JSON}
    pid = client.post("/fhir/Patient", json=patient(), headers=headers).json()["id"]
    for endpoint in (
        "http://127.0.0.1:6379/",
        "https://localhost/push",
        "https://[64:ff9b::7f00:1]/push",
        "https://169.254.169.254/latest",
    ):
        params = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "endpoint", "valueUrl": endpoint},
                {"name": "p256dh", "valueString": "BNc"},
                {"name": "auth", "valueString": "tBH"},
            ],
        }
        refused = client.post(
            f"/fhir/Patient/{pid}/$push-subscription", json=params, headers=headers
        )
        assert refused.status_code == 422, endpoint
        text = refused.json()["issue"][0]["diagnostics"]
        assert text == push.REFUSED_ENDPOINT
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    outbox = OutboxStore(services.store)
    assert client.portal.call(outbox.push_subscriptions, f"Patient/{pid}") == []  # type: ignore[union-attr]
