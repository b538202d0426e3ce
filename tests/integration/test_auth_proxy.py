"""Per-IP limits behind a proxy: the client address comes from X-Forwarded-For of trusted proxies.

The server runs under uvicorn with the options `serve` uses, so the header
handling tested is uvicorn's own, configured by FHIR_FORWARDED_ALLOW_IPS.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn

from fhir_server.app import create_app
from fhir_server.cli import uvicorn_options
from fhir_server.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve(settings_factory: Callable[..., Settings]) -> Iterator[Callable[[str | None], str]]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(trusted: str | None) -> str:
        port = _free_port()
        settings = settings_factory(
            auth_enabled=True, rate_limit_per_minute=2, forwarded_allow_ips=trusted, port=port
        )
        options = {**uvicorn_options(settings), "host": "127.0.0.1", "loop": "asyncio"}
        server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def _token_statuses(base: str, forwarded_for: str, times: int) -> list[int]:
    headers = {"X-Forwarded-For": forwarded_for}
    form = {"grant_type": "client_credentials", "client_id": "nobody"}
    return [
        httpx.post(f"{base}/auth/token", data=form, headers=headers).status_code
        for _ in range(times)
    ]


def test_trusted_proxy_limits_each_client_separately(serve: Callable[[str | None], str]) -> None:
    base = serve("127.0.0.1")
    first = _token_statuses(base, "203.0.113.7", 3)
    assert 429 not in first[:2] and first[2] == 429
    # Another client behind the same proxy has its own allowance.
    assert 429 not in _token_statuses(base, "203.0.113.8", 2)


def test_untrusted_proxy_header_is_ignored(serve: Callable[[str | None], str]) -> None:
    base = serve("192.0.2.1")  # not the address the requests come from
    assert _token_statuses(base, "203.0.113.9", 3)[2] == 429
    # Forging a new X-Forwarded-For does not buy a fresh allowance.
    assert _token_statuses(base, "203.0.113.10", 1) == [429]


def test_by_default_no_proxy_is_trusted_not_even_loopback(
    serve: Callable[[str | None], str],
) -> None:
    """A server not behind a proxy: a local caller cannot pick its address by header."""
    base = serve(None)
    assert _token_statuses(base, "203.0.113.11", 3)[2] == 429
    assert _token_statuses(base, "203.0.113.12", 1) == [429]


def test_no_server_version_banner(serve: Callable[[str | None], str]) -> None:
    base = serve(None)
    response = httpx.get(f"{base}/healthz")
    assert response.status_code == 200
    assert "server" not in response.headers
