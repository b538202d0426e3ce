"""Server time of the patient portal's main pages with 8 concurrent signed-in patients.

One app with SMART on and the demo clinic (four weeks of Slots), in process
(ASGI on one event loop, as one uvicorn worker serves it), on the embedded
store and Redis. Eight patients each sign in through the portal (the whole
code + PKCE round), then all eight open the main pages over and over at the
same time. Printed per page: p50 and p95 of the time from request to answer
(the server's time: no socket, no browser), and the FHIR calls the page made
(its `X-Portal-Fhir-Calls` header, the `PortalApi` counter). Target: every p95
under 100 ms. A page that is not there yet (its part of the portal is not
merged) is listed as such.

Run: `.venv/bin/python -m benchmarks.bench_portal [rounds]` (default 30 rounds per patient).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_core import _cpu_seconds
from fhir_server.app import create_app
from fhir_server.auth.users import Accounts
from fhir_server.demo import prepare_demo
from fhir_server.notifications import celery_app
from fhir_server.settings import Settings
from fhir_server.store import embedded

# authlib refuses plain http outside localhost; the in-process server is http://bench.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

ROOT = "http://bench"
PATIENTS = 8
PASSWORD = "bench-portal-passphrase-1"
PAGES = [
    "/portal/",
    "/portal/account",
    "/portal/book",
    "/portal/appointments",
    "/portal/preferences",
]
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def _hidden(html: str) -> dict[str, str]:
    return {k: v.replace("&amp;", "&") for k, v in _HIDDEN.findall(html)}


async def _sign_in(http: httpx.AsyncClient, username: str) -> None:
    """The browser's way: portal sign-in, the authorization server's two forms, callback."""
    started = await http.get("/portal/sign-in")
    login = await http.get(started.headers["location"])
    consent = await http.post(
        "/auth/authorize",
        data=_hidden(login.text) | {"step": "login", "username": username, "password": PASSWORD},
    )
    done = await http.post("/auth/authorize", data=_hidden(consent.text) | {"decision": "allow"})
    back = await http.get(done.headers["location"])
    assert back.status_code == 303, back.text[:300]


async def _patients(app: Any, settings: Settings) -> list[str]:
    services, auth = app.state.services, app.state.auth
    await prepare_demo(services.store, auth.store, settings, datetime.now(UTC))
    accounts = Accounts(auth.store, settings)
    names = []
    for n in range(PATIENTS):
        patient = await services.store.create(
            {"resourceType": "Patient", "name": [{"family": f"Bench{n}", "given": ["Pat"]}]}
        )
        await accounts.add(f"bench-{n}", PASSWORD, "patient", f"Patient/{patient.id}")
        names.append(f"bench-{n}")
    return names


async def _browse(http: httpx.AsyncClient, page: str, rounds: int, times: list[float]) -> None:
    for _ in range(rounds):
        began = time.perf_counter()
        answer = await http.get(page)
        times.append(time.perf_counter() - began)
        assert answer.status_code == 200, (page, answer.status_code)


def _ms(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[round(q * 100) - 1] * 1000


async def _run(settings: Settings, rounds: int, store_pid: int) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        names = await _patients(app, settings)
        transport = httpx.ASGITransport(app=app)
        clients = [httpx.AsyncClient(transport=transport, base_url=ROOT) for _ in names]
        for http, name in zip(clients, names, strict=True):
            await _sign_in(http, name)
        redis_pid = celery_app.embedded_redis_pid(settings.data_dir)
        assert redis_pid is not None
        cpu = _cpu_seconds(os.getpid(), store_pid, redis_pid)
        probe = clients[0]
        calls: dict[str, str] = {}
        for page in PAGES:
            answer = await probe.get(page)
            if answer.status_code == 200:
                calls[page] = answer.headers.get("x-portal-fhir-calls", "-")
        print(f"bench_portal: {PATIENTS} signed-in patients at once, {rounds} pages each")
        for page in PAGES:
            if page not in calls:
                print(f"  {page:<22} not there yet")
                continue
            # One page at a time, all patients at once: the CPU time the app, store and Redis
            # processes spent in the phase, per page served, is the steadier figure on a
            # shared machine (its load inflates the wall-clock times).
            times: list[float] = []
            before = cpu()
            await asyncio.gather(*(_browse(http, page, rounds, times) for http in clients))
            spent = [(b - a) / len(times) * 1000 for a, b in zip(before, cpu(), strict=True)]
            p50, p95 = _ms(times, 0.5), _ms(times, 0.95)
            verdict = "ok" if p95 < 100 else "OVER 100 ms"
            print(
                f"  {page:<22} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  FHIR calls {calls[page]:>2}  "
                f"CPU ms/page: app {spent[0]:4.1f}, store {spent[1]:4.1f}, redis {spent[2]:4.1f}  "
                f"({verdict})"
            )
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for http in clients:
            await http.aclose()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 30
    data = Path(tempfile.mkdtemp(prefix="bench-portal"))
    server = embedded.start(data)
    try:
        settings = Settings(
            mongodb_uri=server.uri,
            database=f"b{uuid.uuid4().hex[:8]}",
            public_base_url=f"{ROOT}/fhir",
            data_dir=data,
            log_level="WARNING",
            auth_enabled=True,
        )
        asyncio.run(_run(settings, rounds, server.pid))
    finally:
        celery_app.stop_embedded(data)
        embedded.stop(server, data)


if __name__ == "__main__":
    main()
