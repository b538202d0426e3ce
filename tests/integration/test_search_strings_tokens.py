"""String, token, uri and :missing searches, with near-miss resources that must not match."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import patient
from tests.integration.search_support import ids, marker, search, tagged


def test_string_default_is_case_and_accent_insensitive_prefix(client: TestClient) -> None:
    mark = marker()
    muller = tagged(client, mark, patient("Müller", "José"))["id"]
    mullerova = tagged(client, mark, patient("Mullerová", "Eva"))["id"]
    tagged(client, mark, patient("Smuller", "Jo"))  # contains "muller" but does not start with it
    assert sorted(ids(search(client, "Patient", "family=MULLER", mark))) == sorted(
        [muller, mullerova]
    )
    assert ids(search(client, "Patient", "given=jose", mark)) == [muller]
    assert ids(search(client, "Patient", "name=josé", mark)) == [muller]
    assert ids(search(client, "Patient", "family=ller", mark)) == []


def test_string_exact_and_contains(client: TestClient) -> None:
    mark = marker()
    exact = tagged(client, mark, patient("Müller", "Ana"))["id"]
    plain = tagged(client, mark, patient("Muller", "Ana"))["id"]
    inner = tagged(client, mark, patient("Smüller", "Ana"))["id"]
    assert ids(search(client, "Patient", "family:exact=Müller", mark)) == [exact]
    assert ids(search(client, "Patient", "family:exact=müller", mark)) == []
    contains = ids(search(client, "Patient", "family:contains=ULL", mark))
    assert sorted(contains) == sorted([exact, plain, inner])


def test_address_string_parameters(client: TestClient) -> None:
    mark = marker()
    address = {"line": ["1 Rue de la Paix"], "city": "Zürich", "postalCode": "8001"}
    found = tagged(client, mark, patient("A", "B", address=[address]))["id"]
    tagged(client, mark, patient("C", "D", address=[{"city": "Bern", "postalCode": "3001"}]))
    assert ids(search(client, "Patient", "address-city=zurich", mark)) == [found]
    assert ids(search(client, "Patient", "address=1 RUE de", mark)) == [found]
    assert ids(search(client, "Patient", "address-postalcode=800", mark)) == [found]


def test_comma_is_or_and_repetition_is_and(client: TestClient) -> None:
    mark = marker()
    smith_anna = tagged(client, mark, patient("Smith", "Anna"))["id"]
    smith_bob = tagged(client, mark, patient("Smith", "Bob"))["id"]
    jones_anna = tagged(client, mark, patient("Jones", "Anna"))["id"]
    either = ids(search(client, "Patient", "family=smith,jones", mark))
    assert sorted(either) == sorted([smith_anna, smith_bob, jones_anna])
    both = ids(search(client, "Patient", "family=smith&given=anna", mark))
    assert both == [smith_anna]
    assert ids(search(client, "Patient", "name=smith&name=anna", mark)) == [smith_anna]
    assert ids(search(client, "Patient", "name=smith&name=jones", mark)) == []


def test_token_forms(client: TestClient) -> None:
    mark = marker()
    with_system = tagged(client, mark, patient(identifier=[{"system": "urn:mrn", "value": "A-1"}]))[
        "id"
    ]
    without_system = tagged(client, mark, patient(identifier=[{"value": "A-1"}]))["id"]
    other_system = tagged(
        client, mark, patient(identifier=[{"system": "urn:other", "value": "A-1"}])
    )["id"]

    def found(query: str) -> list[str]:
        return sorted(ids(search(client, "Patient", query, mark)))

    assert found("identifier=A-1") == sorted([with_system, without_system, other_system])
    assert found("identifier=urn:mrn|A-1") == [with_system]
    assert found("identifier=|A-1") == [without_system]
    assert found("identifier=urn:other|") == [other_system]
    assert found("identifier=urn:mrn|A-2") == []


def test_token_not_text_and_missing(client: TestClient) -> None:
    mark = marker()
    male = tagged(client, mark, patient(gender="male"))["id"]
    female = tagged(client, mark, patient(gender="female"))["id"]
    unknown = tagged(client, mark, {"resourceType": "Patient", "name": [{"family": "X"}]})["id"]
    not_male = ids(search(client, "Patient", "gender:not=male", mark))
    assert sorted(not_male) == sorted([female, unknown])  # :not includes resources without one
    assert ids(search(client, "Patient", "gender:missing=true", mark)) == [unknown]
    neither = "gender:not=male&gender:not=female"
    assert ids(search(client, "Patient", neither, mark)) == [unknown]
    assert sorted(ids(search(client, "Patient", "gender:missing=false", mark))) == sorted(
        [male, female]
    )
    assert sorted(ids(search(client, "Patient", "gender=male,female", mark))) == sorted(
        [male, female]
    )


def test_token_text_matches_display_and_text(client: TestClient) -> None:
    mark = marker()
    coding = {
        "system": "http://snomed.info/sct",
        "code": "394814009",
        "display": "General practice",
    }
    gp = tagged(
        client,
        mark,
        {
            "resourceType": "Slot",
            "schedule": {"reference": "Schedule/s"},
            "status": "free",
            "start": "2026-01-05T09:00:00Z",
            "end": "2026-01-05T09:30:00Z",
            "specialty": [{"coding": [coding], "text": "Médecine générale"}],
        },
    )["id"]
    tagged(
        client,
        mark,
        {
            "resourceType": "Slot",
            "schedule": {"reference": "Schedule/s"},
            "status": "free",
            "start": "2026-01-05T09:00:00Z",
            "end": "2026-01-05T09:30:00Z",
            "specialty": [{"coding": [{"code": "x", "display": "Dermatology"}]}],
        },
    )
    assert ids(search(client, "Slot", "specialty:text=general", mark)) == [gp]
    assert ids(search(client, "Slot", "specialty:text=medecine", mark)) == [gp]
    assert ids(search(client, "Slot", "specialty=http://snomed.info/sct|394814009", mark)) == [gp]
    assert ids(search(client, "Slot", "specialty=General practice", mark)) == []


def test_boolean_token_and_id(client: TestClient) -> None:
    mark = marker()
    active = tagged(client, mark, patient(active=True))["id"]
    inactive = tagged(client, mark, patient(active=False))["id"]
    assert ids(search(client, "Patient", "active=true", mark)) == [active]
    assert ids(search(client, "Patient", "active=false", mark)) == [inactive]
    assert ids(search(client, "Patient", f"_id={active}", mark)) == [active]
    assert sorted(ids(search(client, "Patient", f"_id={active},{inactive}", mark))) == sorted(
        [active, inactive]
    )
    assert ids(search(client, "Patient", f"_id:not={active}", mark)) == [inactive]


def test_telecom_email_and_phone(client: TestClient) -> None:
    mark = marker()
    telecom = [
        {"system": "email", "value": "ana@example.org"},
        {"system": "phone", "value": "+41 44 000 00 00"},
    ]
    found = tagged(client, mark, patient(telecom=telecom))["id"]
    tagged(client, mark, patient(telecom=[{"system": "phone", "value": "ana@example.org"}]))
    assert ids(search(client, "Patient", "email=ana@example.org", mark)) == [found]
    assert ids(search(client, "Patient", "phone=%2B41 44 000 00 00", mark)) == [found]
    assert ids(search(client, "Patient", "email=%2B41 44 000 00 00", mark)) == []


def test_uri_profile(client: TestClient) -> None:
    mark = marker()
    profile = "http://clinic.example/fhir/StructureDefinition/booking-patient"
    found = tagged(client, mark, patient(meta={"profile": [profile]}))["id"]
    tagged(client, mark, patient())
    assert ids(search(client, "Patient", f"_profile={profile}", mark)) == [found]
    below = "_profile:below=http://clinic.example/fhir/StructureDefinition/"
    assert ids(search(client, "Patient", below, mark)) == [found]
    assert ids(search(client, "Patient", f"_profile={profile}-x", mark)) == []
