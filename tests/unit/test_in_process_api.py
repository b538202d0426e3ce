"""`InProcessApi` hands a whole answer back, even one streamed in parts by a response that
listens for the caller going away (as Starlette's `StreamingResponse` does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from fhir_server.settings import Settings
from fhir_server.ui.fhir_api import InProcessApi


async def _parts() -> AsyncIterator[bytes]:
    for n in range(5):
        await asyncio.sleep(0.01)
        yield f'{{"part": {n}}}\n'.encode()


async def _streamed(request: Request) -> StreamingResponse:
    assert request.headers["host"] == "clinic.example"
    assert request.client is not None and request.client.host == "203.0.113.9"
    return StreamingResponse(_parts(), media_type="application/fhir+ndjson")


def test_a_streamed_answer_arrives_whole() -> None:
    app = Starlette(routes=[Route("/fhir/Stream", _streamed)])
    settings = Settings(public_base_url="https://clinic.example/fhir")
    api = InProcessApi(app, settings, "203.0.113.9")
    answer = asyncio.run(api("GET", "/fhir/Stream", "", {"Accept": "*/*"}, b""))
    assert answer.status == 200
    assert answer.content_type == "application/fhir+ndjson"
    assert answer.body.decode().splitlines() == [f'{{"part": {n}}}' for n in range(5)]
