"""Result parameters and paging: _count, _sort, _total, _summary, links, POST, strictness."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import patient
from tests.integration.rest_support import assert_outcome
from tests.integration.search_support import TEST_SYSTEM, ids, link, marker, search, tagged


def _follow(client: TestClient, url: str) -> dict[str, Any]:
    response = client.get(url.replace("http://testserver", ""))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _walk(client: TestClient, bundle: dict[str, Any], relation: str = "next") -> list[str]:
    seen = ids(bundle)
    while (url := link(bundle, relation)) is not None:
        bundle = _follow(client, url)
        seen += ids(bundle)
    return seen


def _slot(mark: str, start: str, status: str = "free") -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "identifier": [{"system": TEST_SYSTEM, "value": mark}],
        "schedule": {"reference": "Schedule/paging"},
        "status": status,
        "start": start,
        "end": start.replace(":00:00Z", ":30:00Z"),
    }


def test_count_and_next_links_cover_every_match_once(client: TestClient) -> None:
    mark = marker()
    made = {tagged(client, mark, patient(f"Page{n}"))["id"] for n in range(7)}
    first = search(client, "Patient", "_count=3", mark)
    assert len(ids(first)) == 3
    assert link(first, "previous") is None
    walked = _walk(client, first)
    assert len(walked) == 7 and set(walked) == made
    assert "total" not in first  # _total defaults to none


def test_paging_while_inserting_never_skips_or_repeats(client: TestClient) -> None:
    mark = marker()
    made = [tagged(client, mark, patient("Moving"))["id"] for _ in range(6)]
    bundle = search(client, "Patient", "_count=2&_sort=-_lastUpdated", mark)
    seen = ids(bundle)
    while (url := link(bundle, "next")) is not None:
        # New matches appear before and after the cursor while the client pages.
        tagged(client, mark, patient("Moving"))
        bundle = _follow(client, url)
        seen += ids(bundle)
    assert len(seen) == len(set(seen))
    assert set(made) <= set(seen)


def test_previous_and_first_links(client: TestClient) -> None:
    mark = marker()
    for n in range(5):
        tagged(client, mark, patient(f"Back{n}"))
    first = search(client, "Patient", "_count=2&_sort=family", mark)
    second = _follow(client, link(first, "next") or "")
    third = _follow(client, link(second, "next") or "")
    assert link(third, "next") is None and len(ids(third)) == 1
    back = _follow(client, link(third, "previous") or "")
    assert ids(back) == ids(second)
    back_again = _follow(client, link(back, "previous") or "")
    assert ids(back_again) == ids(first)
    assert link(back_again, "previous") is None
    assert ids(_follow(client, link(third, "first") or "")) == ids(first)


def test_sort_by_several_keys_with_stable_tiebreak(client: TestClient) -> None:
    mark = marker()
    rows = [("Adams", "1980-01-01"), ("Adams", "1990-01-01"), ("Baker", "1985-01-01")]
    made = {(f, b): tagged(client, mark, patient(f, birthDate=b))["id"] for f, b in rows}
    twins = sorted(
        tagged(client, mark, patient("Twin", birthDate="2000-01-01"))["id"] for _ in range(3)
    )
    order = ids(search(client, "Patient", "_sort=family,-birthdate", mark))
    assert order[:3] == [
        made[("Adams", "1990-01-01")],
        made[("Adams", "1980-01-01")],
        made[("Baker", "1985-01-01")],
    ]
    assert order[3:] == twins  # equal keys: ordered by id
    descending = ids(search(client, "Patient", "_sort=-family", mark))
    assert descending[:3] == twins
    paged = _walk(client, search(client, "Patient", "_sort=-family,birthdate&_count=2", mark))
    assert paged == ids(search(client, "Patient", "_sort=-family,birthdate", mark))


def test_total_summary_count_and_elements(client: TestClient) -> None:
    mark = marker()
    for n in range(3):
        tagged(client, mark, patient(f"Total{n}"))
    accurate = search(client, "Patient", "_total=accurate&_count=1", mark)
    assert accurate["total"] == 3 and len(ids(accurate)) == 1
    assert search(client, "Patient", "_total=estimate", mark)["total"] == 3
    assert "total" not in search(client, "Patient", "_total=none", mark)
    counted = search(client, "Patient", "_summary=count", mark)
    assert counted["total"] == 3 and not counted.get("entry")
    zero = search(client, "Patient", "_count=0", mark)
    assert zero["total"] == 3 and not zero.get("entry")
    shaped = search(client, "Patient", "_elements=gender", mark)
    resource = shaped["entry"][0]["resource"]
    assert "gender" in resource and "name" not in resource and "birthDate" not in resource


def test_post_search_equals_get(client: TestClient) -> None:
    mark = marker()
    made = tagged(client, mark, patient("Posted", birthDate="1971-06-01"))["id"]
    tagged(client, mark, patient("Posted", birthDate="1981-06-01"))
    query = f"identifier={TEST_SYSTEM}|{mark}&family=posted&birthdate=lt1975"
    got = client.get(f"/fhir/Patient?{query}").json()
    posted = client.post("/fhir/Patient/_search", data=dict(parse_qsl(query)))
    assert posted.status_code == 200, posted.text
    assert ids(posted.json()) == ids(got) == [made]
    assert link(posted.json(), "self") == link(got, "self")


def test_unknown_parameters_ignored_or_strict(client: TestClient) -> None:
    mark = marker()
    made = tagged(client, mark, patient("Lenient"))["id"]
    bundle = search(client, "Patient", "family=lenient&colour=blue", mark)
    assert ids(bundle) == [made]
    self_link = link(bundle, "self") or ""
    assert "colour" not in self_link and "family=lenient" in self_link
    strict = client.get(
        "/fhir/Patient?family=lenient&colour=blue&shade=dark",
        headers={"prefer": "handling=strict"},
    )
    assert_outcome(strict, 400, "colour", "shade")
    lenient = client.get("/fhir/Patient?colour=blue", headers={"prefer": "handling=lenient"})
    assert lenient.status_code == 200


def test_self_link_keeps_the_understood_query(client: TestClient) -> None:
    bundle = search(client, "Patient", "name=a&_count=5&_sort=family&_format=json")
    query = dict(parse_qsl(urlsplit(link(bundle, "self") or "").query))
    assert query == {"name": "a", "_count": "5", "_sort": "family"}


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("_count=many", "_count"),
        ("_sort=colour", "_sort"),
        ("_total=all", "_total"),
        ("_include=Patient:name", "_include"),
        ("_cursor=garbage", "_cursor"),
        ("gender:sounds-like=x", "gender:sounds-like"),
        ("birthdate=2020-13", "birthdate"),
    ],
)
def test_malformed_result_parameters_are_400(client: TestClient, query: str, name: str) -> None:
    assert_outcome(client.get(f"/fhir/Patient?{query}"), 400, name)


def test_cursor_from_another_sort_is_refused(client: TestClient) -> None:
    mark = marker()
    for n in range(3):
        tagged(client, mark, patient(f"Cursor{n}"))
    first = search(client, "Patient", "_count=1&_sort=family,birthdate", mark)
    cursor = dict(parse_qsl(urlsplit(link(first, "next") or "").query))["_cursor"]
    response = client.get(f"/fhir/Patient?_count=1&_cursor={cursor}")
    assert_outcome(response, 400, "_cursor")


def test_booking_slot_search_pages_through_a_week(client: TestClient) -> None:
    mark = marker()
    made = []
    for day in range(5, 13):  # 2026-01-05 .. 2026-01-12
        for hour in (9, 10):
            body = _slot(
                mark, f"2026-01-{day:02d}T{hour:02d}:00:00Z", "busy" if hour == 10 else "free"
            )
            response = client.post("/fhir/Slot", json=body)
            assert response.status_code == 201, response.text
            made.append((body["start"], body["status"], response.json()["id"]))
    week = [rid for start, status, rid in made if status == "free" and start < "2026-01-12"]
    query = "schedule=paging&status=free&start=ge2026-01-05&start=lt2026-01-12&_count=3&_sort=start"
    bundle = search(client, "Slot", query, mark)
    assert _walk(client, bundle) == week


def test_system_search_for_one_type(client: TestClient) -> None:
    mark = marker()
    made = tagged(client, mark, patient("Systemwide"))["id"]
    query = f"_type=Patient&identifier={TEST_SYSTEM}|{mark}&family=systemwide"
    response = client.get(f"/fhir?{query}")
    assert response.status_code == 200, response.text
    assert ids(response.json()) == [made]
    assert_outcome(client.get("/fhir?_type=Patient,Practitioner&name=x"), 400, "_type")
    assert_outcome(client.get("/fhir?_type=Nothing"), 400, "_type")


@pytest.mark.parametrize("values", [[{"$ne": None}, "x"], ["a"], "ab", [1, 2, 3]])
def test_forged_cursors_are_400(client: TestClient, values: object) -> None:
    cursor = base64.urlsafe_b64encode(orjson.dumps(["a", values])).decode()
    response = client.get(f"/fhir/Patient?_sort=family&_cursor={cursor}")
    assert_outcome(response, 400, "_cursor")


@pytest.mark.parametrize("sort", ["birthdate", "-birthdate", "family", "-family,birthdate"])
def test_resources_without_the_sort_value_page_correctly(client: TestClient, sort: str) -> None:
    """No value sorts first ascending and last descending; keyset paging crosses that edge."""
    mark = marker()
    made = {
        tagged(client, mark, patient("Ash", birthDate="1990-01-01"))["id"],
        tagged(client, mark, patient("Birch", birthDate="1980-01-01"))["id"],
        tagged(client, mark, {"resourceType": "Patient", "gender": "other"})["id"],
        tagged(client, mark, {"resourceType": "Patient", "gender": "male"})["id"],
        tagged(client, mark, {"resourceType": "Patient", "name": [{"family": "Cedar"}]})["id"],
    }
    whole = search(client, "Patient", f"_sort={sort}", mark)
    order = ids(whole)
    assert set(order) == made
    valued = [
        e["resource"]["id"]
        for e in whole["entry"]
        if ("birthDate" if "birthdate" in sort.split(",")[0] else "name") in e["resource"]
    ]
    if sort.startswith("-"):
        assert order[: len(valued)] == valued
    else:
        assert order[-len(valued) :] == valued
    forward = search(client, "Patient", f"_sort={sort}&_count=1", mark)
    walked = _walk(client, forward)
    assert walked == order
    last = forward
    while (url := link(last, "next")) is not None:
        last = _follow(client, url)
    assert list(reversed(_walk(client, last, "previous"))) == order


def test_post_search_form_shapes_like_get(client: TestClient) -> None:
    mark = marker()
    tagged(client, mark, patient("Shaped"))
    form = {"identifier": f"{TEST_SYSTEM}|{mark}", "_elements": "gender"}
    posted = client.post("/fhir/Patient/_search", data=form)
    assert posted.status_code == 200, posted.text
    resource = posted.json()["entry"][0]["resource"]
    assert resource["gender"] == "female" and "name" not in resource
    counted = client.post("/fhir/Patient/_search", data={**form, "_summary": "count"}).json()
    assert counted["total"] == 1 and not counted.get("entry")
