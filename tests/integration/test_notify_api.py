"""The notification features an EHR or portal sees over the FHIR API (no worker needed)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_server.cli import app as cli_app
from fhir_server.notifications import subscriptions
from fhir_server.notifications.codes import EVENT_SYSTEM, PREFERENCES_EXT
from fhir_server.notifications.delivery import Context, deliver
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.notifications.preferences import preferences_extension, read_preferences
from fhir_server.rest.services import Services
from fhir_server.store.outbox_store import OutboxStore
from tests.conftest import FHIR_JSON, patient

HEADERS = {"Content-Type": FHIR_JSON}


def _post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post(f"/fhir/{body['resourceType']}", json=body, headers=HEADERS)


def test_preferences_are_plain_fhir_an_ehr_can_read(client: TestClient) -> None:
    body = patient(
        extension=[preferences_extension(["sms", "email"], opted_out=False)],
        communication=[
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fr-CA"}]},
                "preferred": True,
            }
        ],
        telecom=[{"system": "email", "value": "a@example.org"}],
    )
    created = _post(client, body)
    assert created.status_code == 201, created.text
    stored = client.get(f"/fhir/Patient/{created.json()['id']}").json()
    assert read_preferences(stored).channels == ("sms", "email")
    assert read_preferences(stored).language == "fr"
    definition = client.get("/fhir/StructureDefinition/notification-preferences").json()
    assert definition["url"] == PREFERENCES_EXT
    assert client.get("/fhir/StructureDefinition/notification-delivery").status_code == 200


def test_subscription_is_validated_and_activated_or_put_in_error(client: TestClient) -> None:
    missing_criteria = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "x",
        "channel": {"type": "rest-hook"},
    }
    assert _post(client, missing_criteria).status_code == 422

    def subscription(criteria: str, endpoint: str = "https://ehr.example.org/hook") -> str:
        body = {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "sync",
            "criteria": criteria,
            "channel": {
                "type": "rest-hook",
                "endpoint": endpoint,
                "payload": "application/fhir+json",
            },
        }
        response = _post(client, body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    good = subscription("Appointment?actor=Practitioner/123&status=booked")
    bad_param = subscription("Appointment?colour=xyz")
    bad_type = subscription("Observation?code=1234")
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    # The API refuses such an endpoint (422); one stored some other way goes to `error`.
    stored = client.portal.call(  # type: ignore[union-attr]
        services.store.create,
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "sync",
            "criteria": "Appointment?actor=Practitioner/1",
            "channel": {"type": "rest-hook", "endpoint": "ftp://nope"},
        },
    )
    bad_endpoint = stored.id
    ctx = Context(services.settings, services.store, OutboxStore(services.store))
    settled = client.portal.call(subscriptions.activate, ctx)  # type: ignore[union-attr]
    assert settled == {good: "active", bad_param: "error", bad_type: "error", bad_endpoint: "error"}
    errors = {sid: client.get(f"/fhir/Subscription/{sid}").json().get("error") for sid in settled}
    assert errors[good] is None
    assert "colour" in errors[bad_param]
    assert "name one of Appointment" in errors[bad_type]
    assert "endpoint" in errors[bad_endpoint]
    assert client.portal.call(subscriptions.activate, ctx) == {}  # type: ignore[union-attr]


def test_push_subscription_operation_gives_key_and_registers_a_browser(client: TestClient) -> None:
    pid = _post(client, patient()).json()["id"]
    key = client.get(f"/fhir/Patient/{pid}/$push-subscription").json()
    assert key["parameter"][0]["name"] == "applicationServerKey"
    assert len(key["parameter"][0]["valueString"]) == 87  # 65-byte P-256 point, base64url
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "endpoint", "valueUrl": "https://push.example.org/abc"},
            {"name": "p256dh", "valueString": "BNc"},
            {"name": "auth", "valueString": "tBH"},
        ],
    }
    response = client.post(f"/fhir/Patient/{pid}/$push-subscription", json=params, headers=HEADERS)
    assert response.status_code == 200, response.text
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    stored = client.portal.call(OutboxStore(services.store).push_subscriptions, f"Patient/{pid}")  # type: ignore[union-attr]
    assert stored == [
        {"endpoint": "https://push.example.org/abc", "keys": {"p256dh": "BNc", "auth": "tBH"}}
    ]
    # The same key on a second call: generated once, kept in the data dir.
    assert client.get(f"/fhir/Patient/{pid}/$push-subscription").json() == key
    no_keys = {"resourceType": "Parameters", "parameter": params["parameter"][:1]}
    assert (
        client.post(
            f"/fhir/Patient/{pid}/$push-subscription", json=no_keys, headers=HEADERS
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/fhir/Patient/unknown/$push-subscription", json=params, headers=HEADERS
        ).status_code
        == 404
    )


def test_without_smtp_or_sms_settings_messages_land_in_the_outbox_listed_by_the_cli(
    client: TestClient,
) -> None:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    settings = services.settings
    assert settings.smtp_host is None and settings.sms_base_url is None
    person = _post(
        client,
        patient(
            telecom=[
                {"system": "email", "value": "outbox@example.org"},
                {"system": "sms", "value": "+15551234567"},
            ],
            extension=[preferences_extension(["email", "sms"])],
        ),
    ).json()
    appointment = _post(
        client,
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": "2031-03-04T09:00:00Z",
            "end": "2031-03-04T09:30:00Z",
            "participant": [
                {"actor": {"reference": f"Patient/{person['id']}"}, "status": "accepted"}
            ],
        },
    ).json()
    ctx = Context(settings, services.store, OutboxStore(services.store))

    async def record_and_send() -> list[str]:
        async with services.store.unit_of_work() as uow:
            ids = await record_event(
                services.store, uow, AppointmentEvent("booked", appointment), settings=settings
            )
            uow.after_commit.clear()  # no broker in this test: send in-process instead
        for cid in ids:
            await deliver(ctx, cid)
            await deliver(ctx, cid)  # a second run changes nothing
        return ids

    ids = client.portal.call(record_and_send)  # type: ignore[union-attr]
    files = sorted(p.name for p in (settings.data_dir / "outbox").iterdir())
    assert files == sorted([f"{ids[0]}.eml", f"{ids[1]}.sms.txt"])
    listed = CliRunner().invoke(
        cli_app, ["outbox", "list"], env={"FHIR_DATA_DIR": str(settings.data_dir)}
    )
    assert listed.exit_code == 0, listed.output
    assert "outbox@example.org" in listed.output and "+15551234567" in listed.output
    assert "Your appointment is booked" in listed.output


def test_staff_and_ehrs_search_communications_and_subscriptions(client: TestClient) -> None:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    person = _post(client, patient(telecom=[{"system": "email", "value": "not-an-address"}])).json()
    appointment = _post(
        client,
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": "2031-05-06T09:00:00Z",
            "end": "2031-05-06T09:30:00Z",
            "participant": [
                {"actor": {"reference": f"Patient/{person['id']}"}, "status": "accepted"}
            ],
        },
    ).json()
    ctx = Context(services.settings, services.store, OutboxStore(services.store))

    async def record_and_send() -> list[str]:
        async with services.store.unit_of_work() as uow:
            ids = await record_event(services.store, uow, AppointmentEvent("booked", appointment))
            uow.after_commit.clear()
        for cid in ids:
            await deliver(ctx, cid)
        return ids

    [cid] = client.portal.call(record_and_send)  # type: ignore[union-attr]
    found = client.get(
        "/fhir/Communication",
        params={"status": "not-done", "patient": f"Patient/{person['id']}"},
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [cid]
    assert (
        found["entry"][0]["resource"]["statusReason"]["text"] == "The e-mail address is not valid."
    )
    by_event = client.get(
        "/fhir/Communication",
        params={"category": f"{EVENT_SYSTEM}|booked", "recipient": f"Patient/{person['id']}"},
    ).json()
    assert [e["resource"]["id"] for e in by_event["entry"]] == [cid]
    sub = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "search me",
        "criteria": "Appointment?status=booked",
        "channel": {"type": "rest-hook", "endpoint": "https://ehr.example.org/search-me"},
    }
    sid = _post(client, sub).json()["id"]
    listed = client.get(
        "/fhir/Subscription", params={"url": "https://ehr.example.org/search-me"}
    ).json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [sid]


def test_subscription_endpoints_the_server_must_not_call_are_refused(client: TestClient) -> None:
    def body(endpoint: str) -> dict[str, Any]:
        return {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "sync",
            "criteria": "Appointment?status=booked",
            "channel": {"type": "rest-hook", "endpoint": endpoint},
        }

    for endpoint in (
        "http://127.0.0.1:8000/fhir/Patient",  # this server, or anything on its host
        "http://localhost/admin",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "https://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://[::ffff:192.168.1.1]/hook",
        "file:///etc/passwd",
    ):
        refused = _post(client, body(endpoint))
        assert refused.status_code == 422, endpoint
        outcome = refused.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == ["Subscription.channel.endpoint"]
    created = _post(client, body("https://ehr.example.org/hook"))
    assert created.status_code == 201, created.text
    moved = {**created.json(), "channel": {"type": "rest-hook", "endpoint": "http://10.1.1.1/"}}
    updated = client.put(f"/fhir/Subscription/{moved['id']}", json=moved, headers=HEADERS)
    assert updated.status_code == 422
    assert client.get(f"/fhir/Subscription/{moved['id']}").json()["meta"]["versionId"] == "1"
