"""`Measure/[id]/$evaluate-measure` on seeded data, against answers computed by hand.

March 2026 (past, EHR-synced, no Slots): Dr A has 20 fulfilled, 12 noshow and 3 arrived
appointments of patient P1 (female, born 1980, SW1A 1AA); Dr B 15 fulfilled and 2 noshow of
P2 (male, born 2010, N1 9GU). Booked 0, 1, 5 or 30 days ahead (20, 12, 15 and 5 of them).
Dr A's 20 fulfilled ones had a reminder delivered. In the days ahead: 12 appointments
cancelled by the patient 10 hours before their start, 11 cancelled by the clinic 100 hours
before, 14 still booked; a Schedule with four 30-minute Slots, one busy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.reporting.channel import CANCEL_REASON_SYSTEM
from fhir_server.reporting.measures import ROUNDED_URL, SUPPRESSED_URL
from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, audit_events, bearer, mint, system_app

FHIR = {"Content-Type": "application/fhir+json"}
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
TODAY = NOW.date()
AHEAD = (TODAY.isoformat(), (TODAY + timedelta(days=10)).isoformat())
MARCH = ("2026-03-01", "2026-03-31")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{BASE}/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def appointment(
    start: datetime, patient: str, doctor: str, status: str, **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": stamp(start),
        "end": stamp(start + timedelta(minutes=20)),
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{doctor}"}, "status": "accepted"},
        ],
        **extra,
    }


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for app_client in system_app(settings_factory):
        seed(app_client)
        yield app_client


def seed(client: TestClient) -> None:
    p1 = post(
        client,
        {
            "resourceType": "Patient",
            "gender": "female",
            "birthDate": "1980-05-05",
            "address": [{"postalCode": "SW1A 1AA"}],
        },
    )["id"]
    p2 = post(
        client,
        {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "2010-01-01",
            "address": [{"postalCode": "N1 9GU"}],
        },
    )["id"]
    dr_a = post(client, {"resourceType": "Practitioner", "id": "x", "name": [{"family": "A"}]})[
        "id"
    ]
    dr_b = post(client, {"resourceType": "Practitioner", "name": [{"family": "B"}]})["id"]
    past = [(p1, dr_a, "fulfilled")] * 20 + [(p1, dr_a, "noshow")] * 12
    past += (
        [(p1, dr_a, "arrived")] * 3 + [(p2, dr_b, "fulfilled")] * 15 + [(p2, dr_b, "noshow")] * 2
    )
    leads = [0] * 20 + [1] * 12 + [5] * 15 + [30] * 5
    for n, ((patient, doctor, status), lead) in enumerate(zip(past, leads, strict=True)):
        start = datetime(2026, 3, 2 + n % 27, 10, tzinfo=UTC)
        created = stamp(start - timedelta(days=lead, hours=1))
        written = post(client, appointment(start, patient, doctor, status, created=created))
        if n < 20:
            post(
                client,
                {
                    "resourceType": "Communication",
                    "status": "completed",
                    "category": [{"coding": [{"code": "reminder-1440"}]}],
                    "recipient": [{"reference": f"Patient/{patient}"}],
                    "about": [{"reference": f"Appointment/{written['id']}"}],
                },
            )
    for hours, code, count in ((10, "pat", 12), (100, "prov", 11), (30, None, 14)):
        for _ in range(count):
            written = post(client, appointment(NOW + timedelta(hours=hours), p1, dr_a, "booked"))
            if code is None:
                continue
            reason = {"coding": [{"system": CANCEL_REASON_SYSTEM, "code": code}]}
            cancelled = {**written, "status": "cancelled", "cancelationReason": reason}
            response = client.put(
                f"{BASE}/Appointment/{written['id']}", json=cancelled, headers=FHIR
            )
            assert response.status_code == 200, response.text
    schedule = post(
        client, {"resourceType": "Schedule", "actor": [{"reference": f"Practitioner/{dr_a}"}]}
    )["id"]
    for days, status in ((2, "free"), (2, "free"), (4, "busy"), (4, "free")):
        start = datetime.combine(TODAY + timedelta(days=days), datetime.min.time(), UTC)
        post(
            client,
            {
                "resourceType": "Slot",
                "schedule": {"reference": f"Schedule/{schedule}"},
                "status": status,
                "start": stamp(start + timedelta(hours=9)),
                "end": stamp(start + timedelta(hours=9, minutes=30)),
            },
        )
    client.headers["X-Test-Doctors"] = f"{dr_a},{dr_b}"


def evaluate(
    client: TestClient,
    measure: str,
    period: tuple[str, str],
    *extra: str,
    headers: dict[str, str] | None = None,
) -> Any:
    query = f"periodStart={period[0]}&periodEnd={period[1]}" + "".join(f"&{e}" for e in extra)
    return client.get(f"{BASE}/Measure/{measure}/$evaluate-measure?{query}", headers=headers or {})


def groups(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["code"]["coding"][0]["code"]: g for g in report["group"]}


def counts(element: dict[str, Any]) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for population in element.get("population", []):
        code = population["code"]["coding"][0]["code"]
        out[code] = population.get("count", "<11")
    return out


def score(element: dict[str, Any]) -> float | str | None:
    if "measureScore" in element:
        return float(element["measureScore"]["value"])
    urls = [e["url"] for e in element.get("extension", [])]
    return "<11" if SUPPRESSED_URL in urls else None


def test_volume_and_channel(client: TestClient) -> None:
    report = evaluate(client, "appointment-volume", MARCH).json()
    assert report["resourceType"] == "MeasureReport"
    assert (report["status"], report["type"]) == ("complete", "summary")
    assert report["measure"].endswith("/Measure/appointment-volume")
    assert report["period"] == {"start": MARCH[0], "end": MARCH[1]}
    found = {code: counts(g)["initial-population"] for code, g in groups(report).items()}
    assert found == {"booked": 52, "attended": 38, "cancelled": 0, "missed": 14}
    channels = groups(evaluate(client, "booking-channel", MARCH).json())
    assert {c: counts(g)["initial-population"] for c, g in channels.items()} == {
        "portal": 0,
        "clinic": 0,
        "app": 0,
        "ehr": 52,
    }


def test_no_show_rate_with_strata_suppressed_rounded_and_complemented(client: TestClient) -> None:
    report = evaluate(client, "no-show-rate", MARCH, "stratifier=practitioner").json()
    group = groups(report)["no-show"]
    assert counts(group) == {"denominator": 52, "numerator": 14}
    assert score(group) == pytest.approx(14 / 52, abs=1e-4)
    (stratifier,) = group["stratifier"]
    assert stratifier["code"][0]["coding"][0]["code"] == "practitioner"
    strata = {s["value"]["text"]: s for s in stratifier["stratum"]}
    dr_a, dr_b = client.headers["X-Test-Doctors"].split(",")
    a, b = strata[f"Practitioner/{dr_a}"], strata[f"Practitioner/{dr_b}"]
    assert a["value"]["coding"][0]["display"] == "A"
    # Dr B's 2 no-shows are hidden; Dr A's 12 would give them away (14 - 12): hidden too.
    assert counts(b) == {"denominator": 15, "numerator": "<11"}  # 17 rounded to 15
    assert counts(a) == {"denominator": 35, "numerator": "<11"}
    assert score(a) == score(b) == "<11"
    rounded = next(p for p in b["population"] if p.get("count") == 15)
    assert rounded["extension"] == [{"url": ROUNDED_URL, "valueBoolean": True}]


def test_late_cancellations_split_by_side(client: TestClient) -> None:
    found = groups(evaluate(client, "late-cancellation-rate", AHEAD).json())
    assert counts(found["patient"]) == {"denominator": 37, "numerator": 12}
    assert score(found["patient"]) == pytest.approx(12 / 37, abs=1e-4)
    assert counts(found["clinic"]) == {"denominator": 37, "numerator": 0}
    assert score(found["clinic"]) == 0.0
    assert counts(found["all"]) == {"denominator": 37, "numerator": 12}


def test_lead_time_buckets_and_median(client: TestClient) -> None:
    found = groups(evaluate(client, "lead-time", MARCH).json())
    buckets = {c: counts(g).get("initial-population") for c, g in found.items() if c != "median"}
    assert buckets == {"same-day": 20, "1-day": 12, "2-7-days": 15, "over-7-days": "<11"}
    assert found["median"]["measureScore"] == {
        "value": 1.0,
        "unit": "days",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }


def test_reminder_effect(client: TestClient) -> None:
    found = groups(evaluate(client, "reminder-effect", MARCH).json())
    assert counts(found["reminded"]) == {"denominator": 20, "numerator": 0}
    assert score(found["reminded"]) == 0.0
    assert counts(found["not-reminded"]) == {"denominator": 32, "numerator": 14}
    assert score(found["not-reminded"]) == pytest.approx(14 / 32, abs=1e-4)


def test_demographics_always_stratified(client: TestClient) -> None:
    found = groups(evaluate(client, "patient-demographics", MARCH).json())
    # Two distinct patients (P1 with 35 appointments, P2 with 17): each counts once.
    assert counts(found["booked-patients"]) == {"initial-population": "<11"}
    assert counts(found["appointments"]) == {"initial-population": 52}

    def strata(group: dict[str, Any]) -> dict[str, dict[str, int | str]]:
        return {
            s["code"][0]["text"]: {
                x["value"]["text"]: counts(x)["initial-population"] for x in s["stratum"]
            }
            for s in group["stratifier"]
        }

    assert strata(found["appointments"]) == {
        "age-band": {"0-17": 15, "45-64": 35},
        "gender": {"female": 35, "male": 15},
        "postal-district": {"N1": 15, "SW1A": 35},
    }
    assert strata(found["booked-patients"]) == {
        "age-band": {"0-17": "<11", "45-64": "<11"},
        "gender": {"female": "<11", "male": "<11"},
        "postal-district": {"N1": "<11", "SW1A": "<11"},
    }


def test_slots_utilisation_and_third_next_available(client: TestClient) -> None:
    found = groups(evaluate(client, "slot-utilisation", AHEAD).json())
    assert counts(found["utilisation"]) == {"denominator": 120, "numerator": 30}
    assert score(found["utilisation"]) == 0.25
    assert counts(found["open-ahead"]) == {"initial-population": 90}
    # Slots written now first count in the week measured next Monday (its test has the rest).
    assert "group" not in evaluate(client, "third-next-available", AHEAD).json()


def test_period_strata_and_subject(client: TestClient) -> None:
    dr_a = client.headers["X-Test-Doctors"].split(",")[0]
    report = evaluate(
        client,
        "appointment-volume",
        MARCH,
        f"subject=Practitioner/{dr_a}",
        "stratifier=period-month",
    ).json()
    booked = groups(report)["booked"]
    assert counts(booked) == {"initial-population": 35}  # below clinic level: rounded to 5
    (stratifier,) = booked["stratifier"]
    assert [(s["value"]["text"], counts(s)) for s in stratifier["stratum"]] == [
        ("2026-03", {"initial-population": 35})
    ]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("periodStart=2026-03-01", 400),
        ("periodStart=2026-03-31&periodEnd=2026-03-01", 400),
        ("periodStart=March&periodEnd=2026-03-01", 400),
        ("periodStart=2026-03-01&periodEnd=2026-03-31&stratifier=shoe-size", 400),
        ("periodStart=2026-03-01&periodEnd=2026-03-31&subject=Patient/x", 400),
        ("periodStart=2026-03-01&periodEnd=2026-03-31&colour=red", 400),
    ],
)
def test_bad_input_is_400(client: TestClient, query: str, status: int) -> None:
    response = client.get(f"{BASE}/Measure/no-show-rate/$evaluate-measure?{query}")
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_measure_is_404_and_measures_are_served(client: TestClient) -> None:
    response = evaluate(client, "nope", MARCH)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    bundle = client.get(f"{BASE}/Measure").json()
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert {"appointment-volume", "no-show-rate", "third-next-available"} <= ids
    measure = client.get(f"{BASE}/Measure/no-show-rate").json()
    assert measure["status"] == "active" and measure["url"].endswith("/Measure/no-show-rate")
    capability = client.get(f"{BASE}/metadata").json()
    (entry,) = [r for r in capability["rest"][0]["resource"] if r["type"] == "Measure"]
    assert entry["operation"][0]["name"] == "evaluate-measure"


def test_only_staff_and_admins_and_every_run_is_audited(client: TestClient) -> None:
    patient = mint(client, "patient/*.cruds", patient="p", fhir_user="Patient/p")
    doctor = mint(client, "user/*.cruds", role="practitioner", fhir_user="Practitioner/x")
    desk = mint(client, "user/*.cruds", role="frontdesk", fhir_user="Practitioner/desk")
    admin = mint(client, "user/*.cruds", role="admin")
    for token, expected in ((patient, 403), (doctor, 403), (desk, 200), (admin, 200)):
        response = evaluate(client, "appointment-volume", MARCH, headers=bearer(token))
        assert response.status_code == expected, response.text
    runs = [
        e
        for e in audit_events(client)
        if "$evaluate-measure"
        in str(e.get("entity", "")) + str(e.get("source", "")) + str(e.get("subtype", ""))
    ]
    assert len(runs) >= 4


def test_period_day_strata_cover_the_period(client: TestClient) -> None:
    report = evaluate(
        client, "appointment-volume", ("2026-03-01", "2026-03-03"), "stratifier=period-day"
    ).json()
    strata = groups(report)["booked"]["stratifier"][0]["stratum"]
    assert [s["value"]["text"] for s in strata] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert date.fromisoformat(strata[0]["value"]["text"]) == date(2026, 3, 1)
