"""The composition root: `create_app(settings)` wires store, engines and routes."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from fhir_server.audit.relay import audit_trail
from fhir_server.auth.account_routes import router as account_router
from fhir_server.auth.bootstrap import build_auth
from fhir_server.auth.client_registration_routes import router as client_registration_router
from fhir_server.auth.cors import SmartCors
from fhir_server.auth.discovery import capability_security
from fhir_server.auth.first_party import ensure_confidential_client
from fhir_server.auth.manage import router as manage_router
from fhir_server.auth.routes import discovery_router
from fhir_server.auth.routes import router as auth_router
from fhir_server.auth.two_step import router as two_step_router
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.logs import RequestIdMiddleware
from fhir_server.notifications import celery_app, changes, subscriptions
from fhir_server.rest.bulk_routes import router as bulk_router
from fhir_server.rest.calendar_routes import router as calendar_router
from fhir_server.rest.http import install_fhir_routes
from fhir_server.rest.operations import (
    admin_apps,
    admin_keys,
    admin_users,
    bulk_publish,
    calendar_feed,
    evaluate_measure,
    match,
    push_subscription,
    retry,
    subscription_status,
)
from fhir_server.rest.operations.export import EXPORT_OPERATIONS
from fhir_server.rest.operations.scheduling import SCHEDULING_OPERATIONS
from fhir_server.rest.publish_files import router as publish_router
from fhir_server.rest.rate_limit import RateLimiter
from fhir_server.rest.report_hooks import recorded
from fhir_server.rest.role_hooks import guarded
from fhir_server.rest.scheduling_hooks import DELETE_HOOKS, WRITE_HOOKS
from fhir_server.rest.search import FhirSearcher
from fhir_server.rest.security_headers import SecurityHeaders
from fhir_server.rest.services import Services
from fhir_server.scheduling.claims_backfill import ensure_claims_backfilled
from fhir_server.settings import Settings
from fhir_server.store import config_cache, recovery, reindex
from fhir_server.store import slots as slot_store
from fhir_server.store.calendar_feeds import CalendarFeeds
from fhir_server.store.connection import open_database
from fhir_server.store.export_store import ExportStore
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore
from fhir_server.ui.client import clinic_client, portal_client
from fhir_server.ui.sites import mount_sites
from fhir_server.ui.web import landing
from fhir_server.visits import recorder as visits


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the store and the broker both answer (503 names which does not)."""
    services: Services = request.app.state.services
    store_ok = await services.store.database.ping()
    broker_ok = await anyio.to_thread.run_sync(celery_app.broker_reachable)
    body = {
        "status": "ready" if store_ok and broker_ok else "unavailable",
        "store": "ok" if store_ok else "unreachable",
        "broker": "ok" if broker_ok else "unreachable",
    }
    return JSONResponse(body, status_code=200 if store_ok and broker_ok else 503)


def create_app(settings: Settings) -> FastAPI:
    changes.install()  # the booking engine's events become notifications
    visits.install()  # ... and recorded outcomes become Encounters and ChargeItems

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(settings) as database, contextlib.AsyncExitStack() as stack:
            store = ResourceStore(database, indexer=ResourceIndexer(settings.base_url))
            await store.ensure_indexes()
            await reindex.warn_if_stale(store)  # before anything of start-up writes a resource
            journal = await stack.enter_async_context(audit_trail(store, settings))
            searcher = FhirSearcher(store, settings)
            await searcher.ensure_indexes()
            await slot_store.ensure_indexes(store)
            await OutboxStore(store).ensure_indexes()
            await ExportStore(database).ensure_indexes()
            await CalendarFeeds(database).ensure_indexes()
            await ensure_claims_backfilled(store)
            await recovery.settle(database)  # units of work a crash cut short
            config_cache.configure(settings.config_cache_seconds)
            celery_app.configure(settings)  # booking events are published with these settings
            app.state.services = Services(
                settings=settings,
                store=store,
                searcher=searcher,
                operations=[
                    *SCHEDULING_OPERATIONS,
                    push_subscription.OPERATION,
                    subscription_status.OPERATION,
                    match.OPERATION,
                    *EXPORT_OPERATIONS,
                    bulk_publish.OPERATION,
                    calendar_feed.OPERATION,
                    evaluate_measure.OPERATION,
                ],
                write_hooks=guarded(
                    recorded({**WRITE_HOOKS, "Subscription": subscriptions.check_write})
                ),
                delete_hooks=dict(DELETE_HOOKS),
                duplicate_checks={"Patient": match.certain_duplicate},
            )
            app.state.auth = None
            if settings.auth_enabled:
                app.state.auth = await build_auth(database, store, settings, journal)
                app.state.services.access = app.state.auth.access
                app.state.services.operations += [  # the admin console's; SMART on only
                    *admin_users.operations(app.state.auth),
                    *admin_apps.operations(app.state.auth),
                    *admin_keys.operations(app.state.auth),
                    retry.OPERATION,
                ]
                app.state.services.security = capability_security(settings)
                # The patient portal and the clinic workspace sign users in as these clients.
                for ui in (portal_client(settings), clinic_client(settings)):
                    await ensure_confidential_client(
                        app.state.auth.clients,
                        ui.client_id,
                        ui.name,
                        ui.scope,
                        ui.redirect_uri,
                        ui.secret,
                    )
            app.state.limiter = RateLimiter(settings)
            # What start-up built (modules, routes, templates, caches) lives as long as the
            # process: frozen out of the collector, a full collection no longer walks it, and
            # a page that happens to trigger one stalls for milliseconds, not for a tenth of
            # a second (measured on the portal's pages, benchmarks/bench_portal.py).
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()  # an app made again in this process (tests) starts afresh
                await app.state.limiter.close()

    # /openapi.json describes only the small non-FHIR surface (the FHIR API is described by
    # its CapabilityStatement): a development aid, not served in production. No /docs page.
    production = settings.environment == "production"
    app = FastAPI(
        title="fhir-server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None if production else "/openapi.json",
    )
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(SmartCors)
    app.add_middleware(SecurityHeaders)
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)
    # Routes are matched in order: the FHIR API, nearly all the traffic, right after the two
    # discovery documents that share its /fhir prefix; the login pages after it.
    app.include_router(discovery_router)
    app.include_router(bulk_router)  # before the FHIR endpoint, whose /fhir/{path} it shares
    app.include_router(publish_router)  # its files share the /fhir prefix too
    install_fhir_routes(app)
    app.include_router(auth_router)
    app.include_router(account_router)
    app.include_router(client_registration_router)
    app.include_router(calendar_router)
    app.include_router(manage_router)
    app.include_router(two_step_router)
    app.add_api_route("/", landing, methods=["GET"], include_in_schema=False)
    if settings.auth_enabled:  # the portal and the clinic sign their users in through /auth
        mount_sites(app, settings, lambda: app.state.limiter.connected())
    return app
