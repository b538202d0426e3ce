"""`fhir-server calendar-feed issue|revoke OWNER`: an operator's way to hand out or close a feed.

For a user who cannot call `$calendar-feed` themselves (no portal session, a
lost URL to close at once). `issue` prints a new URL (any earlier one stops
working); `revoke` closes the feed. OWNER is `Practitioner/<id>` or
`Patient/<id>`.
"""

from __future__ import annotations

import asyncio

import typer

from fhir_server.cli_support import fail, load_settings, store_errors
from fhir_server.publishing.links import feed_urls
from fhir_server.settings import Settings
from fhir_server.store.calendar_feeds import CalendarFeeds
from fhir_server.store.connection import open_database
from fhir_server.store.resources import ResourceStore

calendar_feed_app = typer.Typer(
    name="calendar-feed", help="Private calendar feed URLs.", no_args_is_help=True
)
_OWNERS = ("Practitioner", "Patient")


def _owner(text: str) -> tuple[str, str]:
    rtype, _, rid = text.partition("/")
    if rtype not in _OWNERS or not rid:
        fail(f"OWNER must be Practitioner/<id> or Patient/<id>, not {text!r:.60}.")
    return rtype, rid


async def _change(settings: Settings, rtype: str, rid: str, revoke: bool) -> str | None:
    """The new token, None after a revocation; exits when the owner does not exist."""
    async with open_database(settings) as database:
        current = await ResourceStore(database).current(rtype, rid)
        if current is None or current.deleted:
            fail(f"{rtype}/{rid} is not known.")
        feeds = CalendarFeeds(database)
        if revoke:
            await feeds.revoke(f"{rtype}/{rid}")
            return None
        return await feeds.issue(f"{rtype}/{rid}")


@calendar_feed_app.command("issue")
def issue(owner: str) -> None:
    """Print a new feed URL for OWNER; any earlier URL stops working."""
    rtype, rid = _owner(owner)
    settings = load_settings()
    with store_errors():
        token = asyncio.run(_change(settings, rtype, rid, revoke=False))
    assert token is not None
    url, webcal = feed_urls(settings, token)
    typer.echo(url)
    typer.echo(webcal)


@calendar_feed_app.command("revoke")
def revoke(owner: str) -> None:
    """Close OWNER's feed: its URL answers 404 from now on."""
    rtype, rid = _owner(owner)
    with store_errors():
        asyncio.run(_change(load_settings(), rtype, rid, revoke=True))
    typer.echo(f"The calendar feed of {rtype}/{rid} is closed.")
