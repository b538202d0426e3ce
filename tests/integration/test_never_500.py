"""No input earns a 500: extreme dates, ids of dots, invalid JSON to the non-FHIR
endpoints, and (property-based, with hypothesis) any search parameter, date or
resource body. A refused write leaves the store exactly as it was.

The properties run 200 examples each (deadline off: the embedded store on a
loaded machine is slow, not wrong); raise `max_examples` locally to dig deeper.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_server.app import create_app
from fhir_server.fhir.search_params import search_params
from fhir_server.settings import Settings
from tests.conftest import FHIR_JSON
from tests.integration.auth_helpers import bearer, mint
from tests.integration.rest_support import store_state

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis/ directory left in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXTREMES = [
    "ge9999-12-31T23:59:59.999999-14:00",
    "le0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "eq0001",
    "sa9999-12",
]
HEADERS = {"content-type": FHIR_JSON}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    """The FHIR API without tokens: what is tested is input handling, and a refused
    request must leave every row as it was (no access audit rows to tell apart)."""
    app = create_app(settings_factory())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        created = test_client.post(
            "/fhir/Patient", json={"resourceType": "Patient"}, headers=HEADERS
        )
        assert created.status_code == 201
        yield test_client


@pytest.fixture(scope="module")
def auth_client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(settings_factory(auth_enabled=True))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        token = mint(test_client, "user/*.cruds", fhir_user="Practitioner/tester")
        test_client.headers.update(bearer(token))
        yield test_client


def _ok(response: Any) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:300])
    if response.status_code >= 400 and response.request.url.path.startswith("/fhir"):
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("value", EXTREMES)
@pytest.mark.parametrize(
    "query", ["Appointment?date", "Slot?start", "Patient?birthdate", "Patient?_lastUpdated"]
)
def test_extreme_dates_in_searches(client: TestClient, query: str, value: str) -> None:
    path, name = query.split("?")
    _ok(client.get(f"/fhir/{path}", params={name: value}))


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize("path", ["/fhir/_history", "/fhir/Patient/_history"])
def test_extreme_since(client: TestClient, path: str, since: str) -> None:
    _ok(client.get(path, params={"_since": since}))


@pytest.mark.parametrize("rtype", ["Appointment", "Slot"])
def test_a_start_at_the_edge_of_time(client: TestClient, rtype: str) -> None:
    body: dict[str, Any] = {
        "resourceType": rtype,
        "start": "0001-01-01T00:00:00+14:00",
        "end": "0001-01-01T01:00:00+14:00",
    }
    if rtype == "Slot":
        body |= {"status": "free", "schedule": {"reference": "Schedule/nowhere"}}
    else:
        body |= {
            "status": "proposed",
            "participant": [{"status": "needs-action", "actor": {"reference": "Patient/x"}}],
        }
    _ok(client.post(f"/fhir/{rtype}", content=orjson.dumps(body), headers=HEADERS))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("rid", ["%2E%2E", "%2E", "%2E%2E%2E"])
def test_ids_of_dots_are_refused(client: TestClient, method: str, rid: str) -> None:
    before = store_state(client)
    body = orjson.dumps({"resourceType": "Patient", "id": rid.replace("%2E", ".")})
    response = client.request(
        method, f"/fhir/Patient/{rid}", content=body if method != "GET" else None, headers=HEADERS
    )
    assert 400 <= response.status_code < 500, response.text
    assert store_state(client) == before


@pytest.mark.parametrize(
    "path",
    [
        "/auth/launch",
        "/auth/token",
        "/auth/introspect",
        "/auth/revoke",
        "/auth/authorize",
        "/auth/register",
        "/auth/password-reset",
        "/auth/password-reset/confirm",
        "/auth/manage",
    ],
)
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"--xx\r\nbroken", "multipart/form-data; boundary=xx"),
        (b"\xff\xfe=\xff&a=%zz", "application/x-www-form-urlencoded"),
    ],
)
def test_unreadable_bodies_to_the_auth_endpoints(
    auth_client: TestClient, path: str, body: bytes, content_type: str
) -> None:
    response = auth_client.post(path, content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500 or response.status_code == 200, response.text[:300]


# -- properties ------------------------------------------------------------------------------

_TYPES = ["Patient", "Appointment", "Slot", "Schedule", "Practitioner"]
_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)


@st.composite
def fhir_times(draw: st.DrawFn) -> str:
    """Dates and times of every precision, often near the ends of the calendar."""
    moment = draw(
        st.one_of(
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 3)),
            st.datetimes(min_value=datetime(9999, 12, 29), max_value=datetime(9999, 12, 31)),
            st.datetimes(),
        )
    )
    zone = draw(st.one_of(st.just(UTC), _OFFSETS))
    shape = draw(st.sampled_from(["%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%dT%H:%M", "full", "bad"]))
    if shape == "full":
        return f"{moment.year:04d}-{moment.replace(tzinfo=zone).isoformat()[5:]}"
    if shape == "bad":
        return draw(st.text(alphabet="0123456789-T:+Z.", max_size=30))
    return f"{moment.year:04d}" + moment.strftime(shape)[len(str(moment.year)) :]


_PREFIXES = st.sampled_from(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
_VALUES = st.one_of(
    st.text(max_size=40),
    st.builds(lambda p, t: p + t, _PREFIXES, fhir_times()),
    st.from_regex(r"[a-z]{0,8}\|[a-z0-9.\-]{0,8}", fullmatch=True),
    st.from_regex(r"[A-Z][a-z]{0,10}/[A-Za-z0-9.\-]{0,10}", fullmatch=True),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)


_GENERAL_PARAMS = [
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_elements",
    "_summary",
    "_total",
    "_has:Appointment:patient:status",
    "unknown-param",
]


@st.composite
def searches(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    rtype = draw(st.sampled_from(_TYPES))
    names = [*sorted(search_params(rtype)), *_GENERAL_PARAMS]
    params = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        modifier = draw(st.sampled_from(["", "", ":missing", ":exact", ":not", ":contains"]))
        chain = draw(st.sampled_from(["", "", ".name", ".identifier"]))
        params.append((name + modifier + chain, draw(_VALUES)))
    return rtype, params


@PROPERTY
@given(search=searches())
def test_any_search_is_answered_without_a_5xx(
    client: TestClient, search: tuple[str, list[tuple[str, str]]]
) -> None:
    rtype, params = search
    _ok(client.get(f"/fhir/{rtype}", params=params))


@PROPERTY
@given(since=fhir_times(), rtype=st.sampled_from([None, *_TYPES]))
def test_any_since_is_answered_without_a_5xx(
    client: TestClient, since: str, rtype: str | None
) -> None:
    _ok(client.get(f"/fhir/{rtype + '/' if rtype else ''}_history", params={"_since": since}))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A resource of a booking type with plausible fields, some of them broken."""
    rtype = draw(st.sampled_from(["Appointment", "Slot", "Patient", "Schedule"]))
    body: dict[str, Any] = {"resourceType": rtype}
    fields = {
        "start": fhir_times(),
        "end": fhir_times(),
        "status": st.sampled_from(["free", "busy", "booked", "proposed", "cancelled", "x"]),
        "birthDate": fhir_times(),
        "schedule": st.builds(lambda r: {"reference": r}, st.text(max_size=20)),
        "participant": st.lists(
            st.fixed_dictionaries(
                {"status": st.sampled_from(["accepted", "needs-action"])},
                optional={"actor": st.builds(lambda r: {"reference": r}, _VALUES)},
            ),
            max_size=2,
        ),
        "id": st.text(max_size=10),
        "meta": _JSON,
        "extension": _JSON,
    }
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=5)):
        body[name] = draw(fields[name])
    return body


@PROPERTY
@given(body=bodies(), method=st.sampled_from(["POST", "PUT"]))
def test_any_body_is_answered_without_a_5xx_and_a_refusal_changes_nothing(
    client: TestClient, body: dict[str, Any], method: str
) -> None:
    before = store_state(client)
    url = f"/fhir/{body['resourceType']}" + ("/prop-id" if method == "PUT" else "")
    # The standard library writes what orjson refuses (integers past 64 bits, NaN).
    response = client.request(method, url, content=json.dumps(body).encode(), headers=HEADERS)
    _ok(response)
    if response.status_code >= 400:
        assert store_state(client) == before
