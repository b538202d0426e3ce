"""What the audit trail adds to a request: reads and searches with and without it.

One app with SMART on, in process (ASGI, one event loop: no thread hop or
socket in the measurement), on the embedded store; a practitioner's token
reads one Appointment and searches 20. Rounds alternate between three ways
of recording, so drift in the machine's load hits them alike:

- `off`: no AuditEvent (the gate's hook only runs the interaction);
- `journal`: the server's way: the event is appended to the process's
  journal file before the answer, the relay task stores it every half second;
- `store`: the alternative: the event is inserted into the store before the
  answer (what the command line does; durable the same way, but a round trip).

A fire-and-forget insert after the answer is not measured as a candidate: it
loses the event when the process dies right after answering. On a shared
machine the wall-clock p99 is mostly other processes' load (the load average
is printed), so also printed, in this thread's CPU time (which that load does
not inflate): what the hook adds before each answer, for the read and the
20-entry search, and what the relay spends per event after the answers.

Run: `.venv/bin/python -m benchmarks.bench_audit` (embedded store in a temp dir).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx

from fhir_server.app import create_app
from fhir_server.audit.recorder import AuditRecorder, S
from fhir_server.audit.relay import AuditRelay
from fhir_server.auth.access import Passage, release
from fhir_server.fhir.messages import FhirRequest, FhirResponse
from fhir_server.settings import Settings
from fhir_server.store import embedded

BASE = "http://bench/fhir"
ROUNDS = 4
PER_ROUND = 100
MATCHES = 20


class Unaudited(AuditRecorder):
    """The gate's hook with recording taken out: the baseline."""

    async def watch(self, req: FhirRequest, interaction: Awaitable[S]) -> S:
        return await interaction


def _ms(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[round(q * 1000) - 1] * 1000


async def _timed(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    began = time.perf_counter()
    response = await http.get(url, headers=headers)
    elapsed = time.perf_counter() - began
    assert response.status_code == 200, response.text
    return elapsed


async def _setup(app: Any) -> tuple[str, dict[str, str]]:
    services, auth = app.state.services, app.state.auth
    patient = await services.store.create({"resourceType": "Patient", "name": [{"family": "B"}]})
    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2030-01-02T09:00:00Z",
        "end": "2030-01-02T09:30:00Z",
        "participant": [
            {"actor": {"reference": f"Patient/{patient.id}"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/bench"}, "status": "accepted"},
        ],
    }
    created = [await services.store.create(appointment) for _ in range(MATCHES)]
    grant = {
        "client_id": "bench",
        "sub": "dr-bench",
        "role": "practitioner",
        "fhir_user": "Practitioner/bench",
        "scope": "user/*.rs",
        "family": "f",
    }
    issued = auth.tokens.access_token(grant)
    await auth.store.save_access({**grant, "_id": issued.jti, "expires_at": issued.expires_at})
    return created[0].id, {"Authorization": f"Bearer {issued.token}"}


async def _hook_cpu(recorder: AuditRecorder, req: FhirRequest, passage: Passage) -> list[float]:
    """CPU seconds (this thread's, so other processes' load does not count) the hook adds to
    one interaction: the event built from what the gate let out, and journaled."""
    samples = []
    for _ in range(2000):

        async def interaction() -> Passage:
            return passage

        began = time.thread_time()
        await recorder.watch(req, interaction())
        samples.append(time.thread_time() - began)
    return samples


async def _relay_cpu(recorder: AuditRecorder) -> float:
    """CPU seconds per event the relay spends storing the journal (after the answers)."""
    assert recorder.journal is not None
    events = len(recorder.journal.pending().events)
    began = time.thread_time()
    await AuditRelay(recorder.journal, recorder.store).relay()
    return (time.thread_time() - began) / max(events, 1)


async def _run(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        access = app.state.auth.access
        journaled = access.audit
        recorders = {
            "off": Unaudited(app.state.services.store),
            "journal": journaled,
            "store": AuditRecorder(app.state.services.store),
        }
        appointment, headers = await _setup(app)
        urls = {
            "read": f"{BASE}/Appointment/{appointment}",
            "search": f"{BASE}/Appointment?actor=Practitioner/bench&_count={MATCHES}",
        }
        samples: dict[tuple[str, str], list[float]] = {(r, k): [] for r in recorders for k in urls}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for _ in range(20):  # warm-up: compiled definitions, connections, caches
                for url in urls.values():
                    await _timed(http, url, headers)
            for _ in range(ROUNDS):
                for name, recorder in recorders.items():
                    access.audit = recorder
                    for kind, url in urls.items():
                        samples[(name, kind)] += [
                            await _timed(http, url, headers) for _ in range(PER_ROUND)
                        ]
            access.audit = journaled
            answers = {k: (await http.get(url, headers=headers)).json() for k, url in urls.items()}
        ctx = await access.authenticate(headers["Authorization"])
        await _relay_cpu(journaled)  # what the rounds left, so the hook is timed alone
        requests = {
            "read": FhirRequest("GET", ["Appointment", appointment], auth=ctx),
            "search": FhirRequest(
                "GET", ["Appointment"], [("actor", "Practitioner/bench")], auth=ctx
            ),
        }
        hook = {}
        for kind, req in requests.items():
            response = FhirResponse(200, answers[kind])
            passage = await release(app.state.services, ctx, req.interaction, response)
            hook[kind] = await _hook_cpu(journaled, req, passage)
        relay = await _relay_cpu(journaled)
    load = os.getloadavg()[0]
    print(
        f"Audit trail (load average {load:.1f} on {os.cpu_count()} cores): "
        f"{ROUNDS} alternating rounds of {PER_ROUND} requests per kind and way"
    )
    for kind in urls:
        off = samples[("off", kind)]
        base50, base99 = _ms(off, 0.5), _ms(off, 0.99)
        for name in recorders:
            p50, p99 = _ms(samples[(name, kind)], 0.5), _ms(samples[(name, kind)], 0.99)
            extra = f"  overhead p50 {p50 - base50:+7.3f}  p99 {p99 - base99:+7.3f}"
            line = f"  {kind:<6} {name:<8} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms"
            print(line if name == "off" else line + extra)
    for kind, cpu in hook.items():
        print(
            f"  hook CPU per {kind:<6} (built and journaled before the answer): "
            f"p50 {_ms(cpu, 0.5) * 1000:4.0f} us  p99 {_ms(cpu, 0.99) * 1000:4.0f} us"
        )
    print(f"  relay CPU per event (stored after the answer, in chunks): {relay * 1e6:4.0f} us")


def main() -> None:
    data = Path(tempfile.mkdtemp())
    server = embedded.start(data)
    try:
        settings = Settings(
            mongodb_uri=server.uri,
            database=f"b{uuid.uuid4().hex[:8]}",
            public_base_url=BASE,
            data_dir=data,
            log_level="WARNING",
            auth_enabled=True,
        )
        asyncio.run(_run(settings))
    finally:
        embedded.stop(server, data)


if __name__ == "__main__":
    main()
