"""The benchmark's server process: the real app plus the ceiling and floor routes.

B0 returns the same ~1 KB Patient JSON from memory (serialised with orjson on
each request); B1 does that after one `find_one` by `_id` on the same store.
The floors (`floors`) issue the store commands of a Slot search page and of a
booking, bare. All are added to the app that `create_app` builds and are
served by the same uvicorn (uvloop, httptools) and middleware as the FHIR
routes, so the ratios measure the FHIR code path and nothing else.

Run: python -m benchmarks.serve_app --uri URI --database DB --port P --payload FILE

The data dir (where the embedded Redis of `/readyz` and notifications lives) is
the payload's folder, the benchmark's temporary directory, and the process ends
through its exit hooks on SIGTERM so that Redis is stopped with it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from benchmarks import floors
from fhir_server.app import create_app
from fhir_server.logs import configure_logging
from fhir_server.rest.services import Services
from fhir_server.settings import Settings


def build(settings: Settings, payload: dict[str, Any]) -> FastAPI:
    app = create_app(settings)

    async def b0(request: Request) -> Response:
        return Response(orjson.dumps(payload), media_type="application/fhir+json")

    async def b1(request: Request) -> Response:
        services: Services = request.app.state.services
        await services.store.collection("Patient").find_one({"_id": request.path_params["rid"]})
        return Response(orjson.dumps(payload), media_type="application/fhir+json")

    floor = floors.BookingFloor.make(settings.base_url, datetime(2030, 1, 7, 10, tzinfo=UTC))

    async def slot_page_floor(request: Request) -> Response:
        services: Services = request.app.state.services
        query = request.query_params
        page = await floors.slot_page(services.store, query["schedule"], query["lo"], query["hi"])
        return Response(page, media_type="application/json")

    async def booking_floor(request: Request) -> Response:
        services: Services = request.app.state.services
        slot, patient = request.path_params["slot"], request.path_params["patient"]
        status = await floor.book(services.store, slot, patient, str(uuid.uuid4()))
        return Response(floor.appointment_row["body"], status, media_type="application/json")

    added = [
        ("/bench/b0/{rid}", b0, "GET"),
        ("/bench/b1/{rid}", b1, "GET"),
        ("/bench/floor/slots", slot_page_floor, "GET"),
        ("/bench/floor/book/{slot}/{patient}", booking_floor, "POST"),
    ]
    for path, endpoint, method in added:
        app.add_api_route(path, endpoint, methods=[method], include_in_schema=False)
    # Matched first, as the FHIR routes nearly are: the ceilings and floors must not pay
    # for the route list (login pages and the like) that the FHIR API no longer walks.
    routes = app.router.routes
    routes[:0] = [routes.pop() for _ in added]
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--payload", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings(
        mongodb_uri=args.uri,
        database=args.database,
        port=args.port,
        data_dir=args.payload.parent,
        log_level="WARNING",
        auth_enabled=False,  # the REST core alone; SMART token checks are not measured here
        # The API rate limits are counted (their cost is in the figures) but never reached.
        rate_limit_address_per_minute=10**9,
        rate_limit_token_per_minute=10**9,
    )
    configure_logging(settings.log_level)
    app = build(settings, orjson.loads(args.payload.read_bytes()))
    # Uvicorn re-raises SIGTERM after its graceful shutdown: exit normally then.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
