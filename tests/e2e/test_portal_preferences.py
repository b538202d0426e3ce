"""Contact details and notification preferences (issue 15 item 8), in Chromium: the page
is axe-clean in English and French and in its error state, its error summary takes focus
and links to each field, choices are kept on the patient's Patient, and a web push the
server sends reaches the page through the portal's service worker."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Page, expect

from fhir_server.demo.clinic import PATIENTS, patient_id
from fhir_server.notifications.events import AppointmentEvent
from tests.e2e.conftest import Live, axe, screenshots, sign_in, zoomed
from tests.integration.notify_support import Rig

PATIENT = f"Patient/{patient_id(PATIENTS[0])}"


def test_preferences_errors_take_focus_and_choices_are_kept(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto(f"{live.url}/portal/preferences")
    expect(page.get_by_role("heading", level=1)).to_have_text("Contact details and notifications")
    axe(page)
    screenshots(page, "portal-preferences")

    page.get_by_label("E-mail address").fill("not an address")
    page.get_by_label("Mobile phone number").fill("")
    page.get_by_label("Text message").check()
    page.get_by_role("button", name="Save your choices").click()
    expect(page).to_have_title(re.compile(r"^Error: Contact details"))
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    links = summary.get_by_role("link")
    expect(links).to_have_count(2)
    assert [links.nth(i).get_attribute("href") for i in range(2)] == ["#email", "#mobile"]
    links.nth(1).click()
    expect(page.get_by_label("Mobile phone number")).to_be_focused()
    expect(page.get_by_label("E-mail address")).to_have_attribute("aria-invalid", "true")
    axe(page)
    screenshots(page, "portal-preferences-error")

    page.get_by_label("E-mail address").fill("ann.martin@example.org")
    page.get_by_label("Mobile phone number").fill("+33 6 12 34 56 78")
    page.get_by_label("E-mail", exact=True).uncheck()
    page.get_by_label("1 day before").uncheck()
    page.get_by_label("Français").check()
    page.get_by_role("button", name="Save your choices").click()
    expect(page.get_by_role("status").first).to_have_text("Your choices are saved.")
    page.reload()
    expect(page.get_by_label("E-mail address")).to_have_value("ann.martin@example.org")
    expect(page.get_by_label("Text message")).to_be_checked()
    expect(page.get_by_label("E-mail", exact=True)).not_to_be_checked()
    expect(page.get_by_label("1 day before")).not_to_be_checked()
    expect(page.get_by_label("2 hours before")).to_be_checked()
    expect(page.get_by_label("Français")).to_be_checked()

    page.goto(f"{live.url}/portal/preferences?lang=fr")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    axe(page)
    page.get_by_label("Adresse e-mail").fill("pas une adresse")
    page.get_by_role("button", name="Enregistrer vos choix").click()
    expect(page.locator(".error-summary")).to_be_focused()
    axe(page)
    screenshots(page, "portal-preferences-error-fr")
    zoomed(page)


def _browser_keys() -> tuple[ec.EllipticCurvePrivateKey, bytes, dict[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return key, auth, {"p256dh": b64(public), "auth": b64(auth)}


def _booked(live: Live) -> list[str]:
    """An appointment of the demo patient booked and its notifications recorded (in a
    thread: the store's loop must not meet Playwright's)."""

    def work() -> list[str]:
        rig = Rig(live.settings, live.smtp, live.push_service)
        try:
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
            appointment = rig.create(
                {
                    "resourceType": "Appointment",
                    "status": "booked",
                    "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "participant": [{"actor": {"reference": PATIENT}, "status": "accepted"}],
                }
            )
            return rig.record(AppointmentEvent("booked", appointment))
        finally:
            rig.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def test_a_web_push_reaches_the_page_through_the_service_worker(page: Page, live: Live) -> None:
    """Chromium's own push service (Google's) is out of reach here, so the browser's
    `pushManager.subscribe` answers a subscription whose endpoint is the local push
    stand-in, with keys this test holds; everything else is real: the service worker
    registered by the page, the subscription sent to the portal and registered through
    `$push-subscription`, the notification encrypted and posted by the Celery worker, and
    its payload delivered to the service worker (CDP) which shows it and tells the page."""
    key, auth, keys = _browser_keys()
    endpoint = f"{live.push_service.url}/push/{os.urandom(4).hex()}"
    subscription = json.dumps({"endpoint": endpoint, "keys": keys})
    page.context.grant_permissions(["notifications"], origin=live.url)
    page.add_init_script(
        "PushManager.prototype.subscribe = function (options) {"
        "  window.subscribedWithKeyOf = options.applicationServerKey.byteLength;"
        f"  var json = {subscription};"
        "  return Promise.resolve({endpoint: json.endpoint, toJSON: function () { return json; }});"
        "};"
    )
    sign_in(page, live)
    page.goto(f"{live.url}/portal/preferences")
    page.get_by_label("Notifications on your devices").check()
    page.get_by_label("English").check()
    page.get_by_role("button", name="Save your choices").click()
    expect(page.get_by_role("status").first).to_have_text("Your choices are saved.")

    cdp = page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    page.get_by_role("button", name="Turn on notifications on this device").click()
    expect(page.locator("#push-status")).to_have_text("Notifications are on for this device.")
    assert page.evaluate("window.subscribedWithKeyOf") == 65  # the server's VAPID key
    axe(page)

    _booked(live)
    deadline = time.monotonic() + 60
    while not (posted := live.push_service.posted(endpoint.removeprefix(live.push_service.url))):
        assert time.monotonic() < deadline, "the server sent no push"
        time.sleep(0.2)
    plain = http_ece.decrypt(posted[0].body, private_key=key, auth_secret=auth, version="aes128gcm")
    assert json.loads(plain)["title"].startswith("Your appointment is booked")

    scope = f"{live.url}/portal/"
    [registration] = [r for r in registrations if r["scopeURL"] == scope and not r["isDeleted"]][:1]
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": live.url,
            "registrationId": registration["registrationId"],
            "data": plain.decode(),
        },
    )
    expect(page.locator("#push-list")).to_contain_text("Your appointment is booked")
