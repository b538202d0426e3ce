"""Each appointment event reaches each channel through a real worker, Redis and servers.

One worker process serves the module; every test makes its own people and
appointments, so they do not see each other's messages.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote_plus
from zoneinfo import ZoneInfo

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.auth.users import Accounts
from fhir_server.notifications import celery_app
from fhir_server.notifications.channels import push
from fhir_server.notifications.channels.push import subscription_key
from fhir_server.notifications.events import AppointmentEvent
from fhir_server.notifications.message import details_of
from fhir_server.notifications.preferences import preferences_extension
from fhir_server.notifications.reminders import enqueue_due
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.clock import parse_instant
from tests.integration.notify_support import Running, fhir_json, wait_until

TZ_EXT = "http://hl7.org/fhir/StructureDefinition/timezone"


def _n() -> str:
    return os.urandom(4).hex()


def patient(
    env: Running, *, email: str | None = None, mobile: str | None = None, **extra: Any
) -> dict[str, Any]:
    telecom = []
    if email:
        telecom.append({"system": "email", "value": email})
    if mobile:
        telecom.append({"system": "phone", "use": "mobile", "value": mobile})
    return env.rig.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Martin", "given": ["Ann"]}],
            "telecom": telecom,
            **extra,
        }
    )


def practitioner(env: Running, email: str) -> dict[str, Any]:
    return env.rig.create(
        {
            "resourceType": "Practitioner",
            "name": [{"family": "House", "given": ["Greg"], "prefix": ["Dr"]}],
            "telecom": [{"system": "email", "value": email}],
        }
    )


def ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def appointment(
    env: Running, *actors: dict[str, Any], hours: float = 72, status: str = "booked"
) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)
    location = env.rig.create(
        {
            "resourceType": "Location",
            "name": "Rivoli clinic",
            "extension": [{"url": TZ_EXT, "valueCode": "Europe/Paris"}],
        }
    )
    participants = [
        {"actor": {"reference": ref(a)}, "status": "accepted"} for a in (*actors, location)
    ]
    return env.rig.create(
        {
            "resourceType": "Appointment",
            "status": status,
            "description": "Knee pain follow-up",
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "participant": participants,
        }
    )


def moved(env: Running, appt: dict[str, Any], hours: float) -> dict[str, Any]:
    start = parse_instant(appt["start"]) + timedelta(hours=hours)
    return env.rig.update(
        {
            **appt,
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def calendar_of(mail: Any) -> bytes:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    payload: bytes = part.get_payload(decode=True)
    return payload


def subject(mail: Any) -> str:
    """The Subject unfolded (long subjects are folded on the wire)."""
    return " ".join(str(mail["Subject"]).split())


def one_mail(env: Running, address: str) -> Any:
    mails = env.smtp.to(address)
    assert len(mails) == 1, [subject(m) for m in mails]
    return mails[0]


# -- events over e-mail ------------------------------------------------------------


def test_booked_is_an_email_with_text_html_and_calendar_request(env: Running) -> None:
    address = f"ann-{_n()}@example.org"
    appt = appointment(env, patient(env, email=address))
    ids = env.rig.record(AppointmentEvent("booked", appt))
    [comm] = env.rig.wait_settled(ids)
    assert comm["status"] == "completed" and comm["sent"], comm.get("statusReason")
    assert comm["recipient"] == [{"reference": ref(patient_of(appt))}]
    mail = one_mail(env, address)
    assert subject(mail).startswith("Your appointment is booked")
    kinds = [p.get_content_type() for p in mail.walk()]
    assert {"text/plain", "text/html", "text/calendar"} <= set(kinds)
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_content()
    assert "Hello Ann Martin," in text
    assert "Knee pain follow-up" in text and "Rivoli clinic" in text
    # Shown in the clinic's zone: 72 h from now in Paris, not UTC.
    local = parse_instant(appt["start"]).astimezone(ZoneInfo("Europe/Paris"))
    assert f"{local:%H:%M} (Europe/Paris)" in text
    ics = calendar_of(mail)
    assert b"METHOD:REQUEST" in ics and f"UID:{appt['id']}@clinic-booking".encode() in ics


def patient_of(appt: dict[str, Any]) -> dict[str, Any]:
    reference = appt["participant"][0]["actor"]["reference"]
    return {"resourceType": "Patient", "id": reference.split("/")[1]}


def test_reschedule_keeps_uid_with_higher_sequence_and_cancel_sends_cancel(env: Running) -> None:
    address = f"ann-{_n()}@example.org"
    appt = appointment(env, patient(env, email=address))
    env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appt)))
    later = moved(env, appt, 24)
    env.rig.wait_settled(env.rig.record(AppointmentEvent("rescheduled", later, previous=appt)))
    cancelled = env.rig.update({**later, "status": "cancelled"})
    env.rig.wait_settled(
        env.rig.record(AppointmentEvent("cancelled", cancelled, cancelled_by="clinic"))
    )
    booked, rescheduled, cancel = env.smtp.to(address)
    sequences = []
    for mail, method in ((booked, b"REQUEST"), (rescheduled, b"REQUEST"), (cancel, b"CANCEL")):
        ics = calendar_of(mail)
        assert b"METHOD:" + method in ics
        assert f"UID:{appt['id']}@clinic-booking".encode() in ics
        sequences.append(int(ics.split(b"SEQUENCE:")[1].split(b"\r\n")[0]))
    assert sequences[0] < sequences[1] < sequences[2]
    assert subject(rescheduled).startswith("Your appointment was moved")
    assert "Previously:" in rescheduled.get_body(("plain",)).get_content()
    assert subject(cancel).startswith("Your appointment was cancelled by the clinic")


def test_pending_confirmed_declined_reach_patient_and_provider(env: Running) -> None:
    patient_mail, doctor_mail = f"p-{_n()}@example.org", f"dr-{_n()}@example.org"
    appt = appointment(
        env, patient(env, email=patient_mail), practitioner(env, doctor_mail), status="pending"
    )
    ids = env.rig.record(AppointmentEvent("pending", appt))
    assert len(ids) == 2
    env.rig.wait_settled(ids)
    assert subject(one_mail(env, doctor_mail)).startswith(
        "An appointment request awaits your confirmation"
    )
    assert subject(one_mail(env, patient_mail)).startswith("Your appointment request was received")
    confirmed = env.rig.update({**appt, "status": "booked"})
    env.rig.wait_settled(env.rig.record(AppointmentEvent("confirmed", confirmed)))
    declined = env.rig.update({**confirmed, "status": "cancelled"})
    env.rig.wait_settled(env.rig.record(AppointmentEvent("declined", declined)))
    subjects = [subject(m) for m in env.smtp.to(patient_mail)]
    assert subjects[1].startswith("Your appointment is confirmed")
    assert subjects[2].startswith("Your appointment request was declined")
    assert b"METHOD:CANCEL" in calendar_of(env.smtp.to(patient_mail)[2])


def test_recording_the_same_event_twice_sends_once(env: Running) -> None:
    address = f"ann-{_n()}@example.org"
    appt = appointment(env, patient(env, email=address))
    first = env.rig.record(AppointmentEvent("booked", appt))
    second = env.rig.record(AppointmentEvent("booked", appt))
    assert first == second
    env.rig.wait_settled(first)
    # A redelivered task for a completed message sends nothing either.
    celery_app.enqueue(first)
    wait_until(lambda: env.rig.read("Communication", first[0])["status"] == "completed")
    env.rig.wait_settled(
        env.rig.record(
            AppointmentEvent("booked", appointment(env, patient(env, email="sentinel-" + address)))
        )
    )
    assert len(env.smtp.to(address)) == 1


# -- other channels ---------------------------------------------------------------


def test_sms_is_short_with_a_link_and_no_reason(env: Running) -> None:
    number = f"+3361{int(_n(), 16) % 10**7:07d}"
    person = patient(env, mobile=number, extension=[preferences_extension(["sms"])])
    appt = appointment(env, person)
    [comm] = env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appt)))
    assert comm["status"] == "completed"
    [sent] = [
        r
        for r in env.http.posted("/sms/2010-04-01/Accounts/AC123/Messages.json")
        if number.encode().replace(b"+", b"%2B") in r.body
    ]
    form = dict(pair.split("=", 1) for pair in sent.body.decode().split("&"))
    body = unquote_plus(form["Body"])
    assert body.startswith("Your appointment is booked")
    assert f"/portal/appointments/{appt['id']}" in body
    assert "Knee" not in body and len(body) <= 160
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:secret").decode()


def _browser() -> tuple[ec.EllipticCurvePrivateKey, bytes, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return key, auth, {"keys": {"p256dh": b64(public), "auth": b64(auth)}}


def test_push_goes_encrypted_to_each_registered_browser(env: Running) -> None:
    person = patient(
        env, email=f"p-{_n()}@example.org", extension=[preferences_extension(["push"])]
    )
    key, auth, info = _browser()
    info["endpoint"] = f"{env.http.url}/push/{_n()}"
    env.rig.run(
        env.rig.ctx.outbox.save_push_subscription(subscription_key(info), ref(person), info)
    )
    gone = {**_browser()[2], "endpoint": f"{env.http.url}/gone/{_n()}"}
    env.http.status["/gone/"] = 410
    env.rig.run(
        env.rig.ctx.outbox.save_push_subscription(subscription_key(gone), ref(person), gone)
    )
    appt = appointment(env, person)
    [comm] = env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appt)))
    assert comm["status"] == "completed"
    [request] = env.http.posted(info["endpoint"].removeprefix(env.http.url))
    assert request.headers["authorization"].startswith("vapid t=")
    plain = http_ece.decrypt(request.body, private_key=key, auth_secret=auth, version="aes128gcm")
    message = fhir_json(plain)
    assert message["title"].startswith("Your appointment is booked")
    assert message["url"].endswith(f"/portal/appointments/{appt['id']}")
    # The browser whose push service said 410 Gone is forgotten.
    assert env.rig.run(env.rig.ctx.outbox.push_subscriptions(ref(person))) == [info]


def test_push_to_an_address_that_became_private_is_not_sent_and_says_nothing_of_it(
    env: Running,
) -> None:
    """A browser endpoint whose name now resolves to this host (stored before it changed)
    is refused at delivery; the patient-readable reason is one fixed sentence."""
    person = patient(
        env, email=f"p-{_n()}@example.org", extension=[preferences_extension(["push"])]
    )
    path = f"/push/{_n()}"
    info = {**_browser()[2], "endpoint": env.http.url.replace("127.0.0.1", "localhost") + path}
    env.rig.run(
        env.rig.ctx.outbox.save_push_subscription(subscription_key(info), ref(person), info)
    )
    [comm] = env.rig.wait_settled(
        env.rig.record(AppointmentEvent("booked", appointment(env, person)))
    )
    assert comm["status"] == "not-done"
    assert comm["statusReason"]["text"] == push.FAILED
    assert _attempts(comm) == 1  # refused for good: no retry
    assert env.http.posted(path) == []


def _channel(comm: dict[str, Any]) -> str:
    return str(comm["medium"][0]["coding"][0]["code"])


def _api(env: Running) -> TestClient:
    return TestClient(create_app(env.rig.settings))


def test_rest_hook_subscription_created_over_fhir_gets_matching_events(env: Running) -> None:
    doctor = practitioner(env, f"dr-{_n()}@example.org")
    other = practitioner(env, f"dr-{_n()}@example.org")
    hook = f"/hook/{_n()}"
    with _api(env) as api:
        created = api.post(
            "/fhir/Subscription",
            json={
                "resourceType": "Subscription",
                "status": "requested",
                "reason": "EHR sync",
                "criteria": f"Appointment?actor={ref(doctor)}",
                "channel": {
                    "type": "rest-hook",
                    "endpoint": f"{env.http.url}{hook}",
                    "payload": "application/fhir+json",
                    "header": ["Authorization: Bearer ehr-token"],
                },
            },
            headers={"Content-Type": "application/fhir+json"},
        )
        assert created.status_code == 201, created.text
        sub_id = created.json()["id"]
        mine = appointment(env, patient(env), doctor)
        theirs = appointment(env, patient(env), other)
        ids = env.rig.record(AppointmentEvent("booked", mine))
        others = env.rig.record(AppointmentEvent("booked", theirs))
        assert [_channel(c) for c in env.rig.communications(others)] == ["email"]
        [comm] = [c for c in env.rig.wait_settled(ids) if _channel(c) == "rest-hook"]
        assert comm["status"] == "completed"
        assert comm["about"][1] == {"reference": f"Subscription/{sub_id}"}
        [request] = env.http.posted(hook)
        assert request.headers["authorization"] == "Bearer ehr-token"
        assert request.headers["content-type"] == "application/fhir+json"
        assert fhir_json(request.body)["id"] == mine["id"]
        # Activation is recorded just after the delivery the endpoint has already seen.
        wait_until(lambda: api.get(f"/fhir/Subscription/{sub_id}").json()["status"] == "active")
        # Hold expiry goes to the Subscription only, never to the patient.
        ids = env.rig.record(AppointmentEvent("hold-expired", {**mine, "status": "cancelled"}))
        assert [_channel(c) for c in env.rig.communications(ids)] == ["rest-hook"]
        env.rig.wait_settled(ids)
        assert len(env.http.posted(hook)) == 2


def test_rest_hook_with_empty_payload_posts_no_body(env: Running) -> None:
    doctor = practitioner(env, f"dr-{_n()}@example.org")
    hook = f"/hook/{_n()}"
    env.rig.create(
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "ping only",
            "criteria": f"Appointment?practitioner={doctor['id']}",
            "channel": {"type": "rest-hook", "endpoint": f"{env.http.url}{hook}"},
        }
    )
    env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appointment(env, doctor))))
    [request] = env.http.posted(hook)
    assert request.body == b"" and "content-type" not in request.headers


# -- preferences ------------------------------------------------------------------


def test_opted_out_patient_gets_nothing_but_provider_still_does(env: Running) -> None:
    patient_mail, doctor_mail = f"p-{_n()}@example.org", f"dr-{_n()}@example.org"
    person = patient(env, email=patient_mail, extension=[preferences_extension([], opted_out=True)])
    ids = env.rig.record(
        AppointmentEvent("booked", appointment(env, person, practitioner(env, doctor_mail)))
    )
    assert len(ids) == 1
    env.rig.wait_settled(ids)
    assert env.smtp.to(patient_mail) == [] and len(env.smtp.to(doctor_mail)) == 1


def test_only_the_reminders_a_patient_chose_are_sent(env: Running) -> None:
    """`reminderOffset` picks reminders (the portal's preferences page writes it);
    `noReminders` stops them, while other notifications still go out."""
    some, none = f"p-{_n()}@example.org", f"p-{_n()}@example.org"
    picky = patient(env, email=some, extension=[preferences_extension(["email"], reminders=[120])])
    quiet = patient(env, email=none, extension=[preferences_extension(["email"], reminders=[])])
    doctor = practitioner(env, f"dr-{_n()}@example.org")
    day_before = [
        AppointmentEvent("reminder", appointment(env, person, doctor), offset_minutes=1440)
        for person in (picky, quiet)
    ]
    assert [len(env.rig.record(event)) for event in day_before] == [1, 1]  # the doctor's
    two_hours = AppointmentEvent("reminder", appointment(env, picky, doctor), offset_minutes=120)
    ids = env.rig.record(two_hours)
    assert len(ids) == 2
    booked = env.rig.record(AppointmentEvent("booked", appointment(env, quiet, doctor)))
    env.rig.wait_settled(ids + booked)
    assert len(env.smtp.to(some)) == 1 and len(env.smtp.to(none)) == 1


def test_channel_choice_and_language_are_honoured(env: Running) -> None:
    address = f"p-{_n()}@example.org"
    number = f"+3362{int(_n(), 16) % 10**7:07d}"
    person = patient(
        env,
        email=address,
        mobile=number,
        extension=[preferences_extension(["sms"])],
        communication=[
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}},
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fr-FR"}]},
                "preferred": True,
            },
        ],
    )
    [comm] = env.rig.wait_settled(
        env.rig.record(AppointmentEvent("booked", appointment(env, person)))
    )
    assert comm["medium"][0]["coding"][0]["code"] == "sms"
    assert env.smtp.to(address) == []
    [sent] = [r for r in env.http.posted("/sms/") if number[1:].encode() in r.body]
    assert parse_qs(sent.body.decode())["Body"][0].startswith("Votre rendez-vous est réservé")
    # The same person choosing e-mail gets French mail with French dates.
    env.rig.update(
        {**env.rig.read("Patient", person["id"]), "extension": [preferences_extension(["email"])]}
    )
    env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appointment(env, person))))
    mail = one_mail(env, address)
    assert subject(mail).startswith("Votre rendez-vous est réservé")
    assert "Gérer votre rendez-vous" in mail.get_body(("plain",)).get_content()


# -- failures ---------------------------------------------------------------------


def test_bad_destinations_end_not_done_with_reason_and_the_worker_carries_on(env: Running) -> None:
    bad_syntax = patient(env, email="not-an-address")
    refused = patient(env, email=f"x-{_n()}@refused.example")
    failing_sms = patient(env, mobile="+33600000500", extension=[preferences_extension(["sms"])])
    env.http.status["/sms/"] = 500
    hook = f"/hook/{_n()}"
    sub = env.rig.create(
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "unreachable",
            "criteria": f"Appointment?patient={ref(bad_syntax)}",
            "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/nothing-listens"},
        }
    )
    try:
        ids = []
        for person in (bad_syntax, refused, failing_sms):
            ids += env.rig.record(AppointmentEvent("booked", appointment(env, person)))
        found = {
            c["medium"][0]["coding"][0]["code"] + ":" + c["statusReason"]["text"]: c
            for c in env.rig.wait_settled(ids)
        }
    finally:
        env.http.status.pop("/sms/")
    assert all(c["status"] == "not-done" for c in found.values())
    assert set(found) == {
        "email:The e-mail address is not valid.",
        "email:The mail server refused the recipient address.",
        "sms:The SMS provider answered 500.",
        "rest-hook:The rest-hook endpoint could not be reached.",
    }
    attempts = {k: _attempts(c) for k, c in found.items()}
    assert attempts["sms:The SMS provider answered 500."] == 3  # retried to the last attempt
    assert attempts["email:The e-mail address is not valid."] == 1  # permanent: no retry
    subscription = env.rig.read("Subscription", sub["id"])
    assert subscription["status"] == "error"
    assert subscription["error"] == "The rest-hook endpoint could not be reached."
    assert env.http.posted(hook) == []
    # An endpoint stored without the API's check is refused at delivery (not an allowed host).
    inside = env.rig.create(
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "private network",
            "criteria": f"Appointment?patient={ref(bad_syntax)}",
            "channel": {"type": "rest-hook", "endpoint": "http://10.9.8.7/hook"},
        }
    )
    ids = env.rig.record(AppointmentEvent("cancelled", appointment(env, bad_syntax)))
    [hooked] = [
        c
        for c in env.rig.wait_settled(ids)
        if _channel(c) == "rest-hook" and inside["id"] in str(c["about"])
    ]
    assert hooked["status"] == "not-done"
    assert "FHIR_SUBSCRIPTION_ALLOWED_HOSTS" in hooked["statusReason"]["text"]
    # No crash loop: the same worker process still delivers.
    assert env.worker.process is not None and env.worker.process.poll() is None
    address = f"ok-{_n()}@example.org"
    env.rig.wait_settled(
        env.rig.record(AppointmentEvent("booked", appointment(env, patient(env, email=address))))
    )
    assert len(env.smtp.to(address)) == 1


def _attempts(comm: dict[str, Any]) -> int:
    return int(details_of(comm)["attempts"])


# -- reminders --------------------------------------------------------------------


def test_reminders_at_offsets_once_and_not_for_cancelled_or_moved(env: Running) -> None:
    kept, cancelled_mail, moved_mail = (
        f"{k}-{_n()}@example.org" for k in ("kept", "gone", "moved")
    )
    kept_appt = appointment(env, patient(env, email=kept), hours=30)
    gone_appt = appointment(env, patient(env, email=cancelled_mail), hours=30)
    moved_appt = appointment(env, patient(env, email=moved_mail), hours=30)
    for appt in (kept_appt, gone_appt, moved_appt):
        env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appt)))
    env.rig.update({**gone_appt, "status": "cancelled"})
    later = moved(env, moved_appt, 2)
    env.rig.wait_settled(
        env.rig.record(AppointmentEvent("rescheduled", later, previous=moved_appt))
    )

    start = parse_instant(kept_appt["start"])
    day_before = start - timedelta(hours=24) + timedelta(minutes=1)
    ids = env.rig.run(enqueue_due(env.rig.ctx, day_before))
    env.rig.wait_settled(ids)
    assert env.rig.run(enqueue_due(env.rig.ctx, day_before)) == []  # once
    [_, reminder] = env.smtp.to(kept)
    assert subject(reminder).startswith("Reminder: your appointment is in 24 hours")
    assert len(env.smtp.to(cancelled_mail)) == 1  # only the booking
    assert len(env.smtp.to(moved_mail)) == 2  # booking and move, no reminder for the old time
    # The moved appointment is reminded for its new time.
    ids = env.rig.run(
        enqueue_due(env.rig.ctx, parse_instant(later["start"]) - timedelta(minutes=119))
    )
    env.rig.wait_settled(ids)
    *_, reminder = env.smtp.to(moved_mail)
    assert len(env.smtp.to(moved_mail)) == 3  # the 24 h one was overtaken by the 2 h one
    assert subject(reminder).startswith("Reminder: your appointment is in 2 hours")
    # By then the kept appointment has started: its 2 h reminder is not sent late.
    assert len(env.smtp.to(kept)) == 2


def test_transient_failures_are_retried_with_backoff_until_delivered(env: Running) -> None:
    doctor = practitioner(env, f"dr-{_n()}@example.org")
    hook = f"/hook/{_n()}"
    env.http.fail_first[hook] = 2  # two 503s, then success
    env.rig.create(
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "flaky EHR",
            "criteria": f"Appointment?actor={ref(doctor)}",
            "channel": {"type": "rest-hook", "endpoint": f"{env.http.url}{hook}"},
        }
    )
    ids = env.rig.record(AppointmentEvent("booked", appointment(env, doctor)))
    [comm] = [c for c in env.rig.wait_settled(ids) if _channel(c) == "rest-hook"]
    assert comm["status"] == "completed" and "statusReason" not in comm
    assert _attempts(comm) == 3
    assert len(env.http.posted(hook)) == 3
    # Each retry waited at least half its backoff ceiling (0.2 s, then 0.4 s, jittered).
    history = [
        env.rig.run(env.rig.store.vread("Communication", comm["id"], v)) for v in range(1, 8)
    ]
    claims = [
        parse_instant(h.updated)
        for h in history
        if h.resource and h.resource["status"] == "in-progress"
    ]
    assert len(claims) == 3
    assert claims[1] - claims[0] >= timedelta(seconds=0.1)
    assert claims[2] - claims[1] >= timedelta(seconds=0.2)


def test_a_provider_without_email_is_reached_at_their_account_address(env: Running) -> None:
    """Provider contacts come from the user accounts (auth) where the resource has none."""
    doctor = env.rig.create({"resourceType": "Practitioner", "name": [{"family": "Quinn"}]})
    address = f"quinn-{_n()}@example.org"
    accounts = Accounts(AuthStore(env.rig.store.database), env.rig.settings)
    env.rig.run(
        accounts.add(f"quinn{_n()}", "a-long-passphrase-9", "practitioner", ref(doctor), address)
    )
    appt = appointment(env, patient(env, email=f"p-{_n()}@example.org"), doctor)
    env.rig.wait_settled(env.rig.record(AppointmentEvent("booked", appt)))
    assert subject(one_mail(env, address))
