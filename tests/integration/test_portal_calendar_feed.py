"""The portal's calendar feed page against the real app and store: the link comes from
`Patient/{me}/$calendar-feed` (a POST; opening the page issues nothing), the feed it names
serves the patient's calendar, "Stop this feed" closes it, and a refusal shows in the error
summary with nothing issued."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import call
from tests.integration.portal_support import (
    PORTAL,
    add_patient_login,
    portal_app,
    portal_csrf,
    sign_in,
)


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from portal_app(settings_factory)


def _feeds(client: TestClient, owner: str) -> int:
    """How many feeds the owner has in the store (0 or 1)."""
    database = client.app.state.services.store.database  # type: ignore[attr-defined]
    found: int = call(client, database.db["calendar_feeds"].count_documents, {"_id": owner})
    return found


def _shown_url(html: str) -> str:
    found = re.search(r'id="feed-url" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def test_the_page_gets_a_feed_url_and_stops_the_feed(app: TestClient) -> None:
    app.cookies.clear()
    owner = f"Patient/{add_patient_login(app, 'feed-a')}"
    sign_in(app, "feed-a")
    assert 'href="/portal/calendar-feed"' in app.get(f"{PORTAL}/appointments").text
    opened = app.get(f"{PORTAL}/calendar-feed")
    assert opened.status_code == 200
    assert "Add your appointments to your calendar" in opened.text
    assert 'id="feed-url"' not in opened.text and _feeds(app, owner) == 0

    forged = app.post(f"{PORTAL}/calendar-feed", data={"csrf": "forged"})
    assert forged.status_code == 403 and _feeds(app, owner) == 0

    csrf = portal_csrf(opened.text)
    got = app.post(f"{PORTAL}/calendar-feed", data={"csrf": csrf})
    assert got.status_code == 200, got.text[:500]
    assert got.headers["cache-control"] == "no-store"
    url = _shown_url(got.text)
    path = urlsplit(url).path
    assert path.startswith("/calendar/") and path.endswith(".ics")
    assert f'href="webcal://{url.split("://", 1)[1]}"' in got.text
    feed = app.get(path)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")

    again = _shown_url(app.post(f"{PORTAL}/calendar-feed", data={"csrf": csrf}).text)
    assert again != url and app.get(path).status_code == 404  # a new link stops the old one

    stopped = app.post(f"{PORTAL}/calendar-feed/stop", data={"csrf": csrf}, follow_redirects=False)
    assert stopped.status_code == 303 and stopped.headers["location"].endswith("stopped=1")
    assert app.get(urlsplit(again).path).status_code == 404 and _feeds(app, owner) == 0
    assert "Your calendar feed is stopped." in app.get(stopped.headers["location"]).text
    assert (
        "Ajouter vos rendez-vous à votre agenda" in app.get(f"{PORTAL}/calendar-feed?lang=fr").text
    )


def test_a_refusal_shows_in_the_error_summary_and_issues_nothing(app: TestClient) -> None:
    app.cookies.clear()
    patient_id = add_patient_login(app, "feed-b")
    sign_in(app, "feed-b")
    csrf = portal_csrf(app.get(f"{PORTAL}/calendar-feed").text)
    store = app.app.state.services.store  # type: ignore[attr-defined]
    call(app, store.delete, "Patient", patient_id)  # the record is gone meanwhile

    refused = app.post(f"{PORTAL}/calendar-feed", data={"csrf": csrf})
    assert refused.status_code in (404, 410), refused.text[:500]
    assert 'class="error-summary"' in refused.text
    assert "This could not be done. Try again later." in refused.text
    assert 'id="feed-url"' not in refused.text and _feeds(app, f"Patient/{patient_id}") == 0
