"""`GET /calendar/{token}.ics`: an owner's private calendar feed, built on every request.

The token (from `$calendar-feed`, stored hashed) names the owner; the feed is
read as that owner through the access gate (a Practitioner sees the
Appointments of their Schedules, a Patient their own), so it can never show
more than the owner's own token would. Built on request, so a booking or a
cancellation shows the next time the calendar app looks; `ETag` and
`Last-Modified` let it look cheaply (304). An unknown or revoked token is 404,
and so is the feed of an owner whose accounts are all disabled (disabling an
account closes its feed, `auth.users`; this check on the `fhir_user` index
covers whatever that missed). A feed an operator issued for a record no
account is linked to works as long as it is not revoked.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.auth.policy import TokenContext
from fhir_server.auth.role_checks import with_actors
from fhir_server.auth.scopes import ScopeSet
from fhir_server.fhir.errors import FhirError, NotFound
from fhir_server.fhir.instants import fhir_instant, parse_instant
from fhir_server.notifications.render import zone
from fhir_server.publishing.calendar import feed
from fhir_server.rest.gated_reads import read_all
from fhir_server.rest.http import error_response, services_of
from fhir_server.rest.services import Services
from fhir_server.scheduling import extensions as ext
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.calendar_feeds import CalendarFeeds

FEED_CLIENT = "calendar-feed"
# How far back a feed reaches (calendar apps keep what they already have).
PAST = timedelta(days=31)
_SCOPES = {
    "Patient": "patient/Appointment.rs patient/Location.rs",
    "Practitioner": "user/Appointment.rs user/Location.rs user/PractitionerRole.rs",
}

router = APIRouter()


async def owner_caller(services: Services, owner: str) -> TokenContext:
    """The token context the owner's own sign-in would have for reading appointments."""
    rtype, _, rid = owner.partition("/")
    caller = TokenContext(
        scopes=ScopeSet.parse(_SCOPES[rtype]),
        client_id=FEED_CLIENT,
        sub=owner,
        patient=rid if rtype == "Patient" else None,
        fhir_user=owner,
        role=rtype.lower(),
    )
    return await with_actors(services.searcher, caller)  # a practitioner's PractitionerRoles


async def owner_feed(services: Services, owner: str, now: datetime) -> tuple[bytes, str | None]:
    """The feed's body and the latest change among its appointments (None when empty)."""
    caller = await owner_caller(services, owner)
    window = [("date", f"ge{fhir_instant(now - PAST)}"), ("_sort", "date")]
    appointments = [a async for a in read_all(services, caller, "Appointment", window)]
    places = {
        str(p["actor"]["reference"]).split("/", 1)[1]
        for a in appointments
        for p in a.get("participant") or []
        if str((p.get("actor") or {}).get("reference", "")).startswith("Location/")
    }
    zones: dict[str, Any] = {}
    if places:
        async for location in read_all(services, caller, "Location", [("_id", ",".join(places))]):
            named = ext.first(location, ext.TIMEZONE) or {}
            zones[f"Location/{location['id']}"] = zone(named.get("valueCode"), "UTC")
    settings = services.settings
    body = feed(
        appointments,
        owner_type=owner.partition("/")[0],
        zones=zones,
        fallback=zone(None, settings.notify_timezone),
        patient_names=settings.calendar_feed_patient_names,
        stamp=now,
    )
    updated = [str(a["meta"]["lastUpdated"]) for a in appointments if a.get("meta")]
    return body, max(updated) if updated else None


async def calendar_feed(request: Request, token: str) -> Response:
    try:
        address = request.client.host if request.client else "unknown"
        await request.app.state.limiter.check(address, None)
        services = services_of(request)
        database = services.store.database
        owner = await CalendarFeeds(database).owner_of(token)
        if owner is None or await AuthStore(database).only_disabled_accounts(owner):
            raise NotFound("No such calendar feed (it may have been revoked).")
        body, changed = await owner_feed(services, owner, datetime.now(UTC))
    except FhirError as error:
        return error_response(error)
    headers = {
        "ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"',
        "Cache-Control": "private, no-cache",
    }
    if changed:
        headers["Last-Modified"] = format_datetime(parse_instant(changed), usegmt=True)
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    content = b"" if request.method == "HEAD" else body
    return Response(content, media_type="text/calendar; charset=utf-8", headers=headers)


router.add_api_route(
    "/calendar/{token}.ics", calendar_feed, methods=["GET", "HEAD"], include_in_schema=False
)
