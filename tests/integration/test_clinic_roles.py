"""The roles matrix of the clinic workspace: each role signs in and opens every workspace
page; a page it may open answers 200, any other the 403 page (never a crash), and its menu
lists exactly the sections it may open.

Data-driven: the header menu's sections (`ui.clinic.roles.SECTIONS`) are read as they are,
so a part that adds its section is checked with no edit here; pages outside the menu are
listed in `PAGES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from fhir_server.ui.clinic.roles import ADMIN, FRONTDESK, PRACTITIONER, SECTIONS, STAFF
from tests.integration.clinic_schedule_setup import seed
from tests.integration.portal_support import CLINIC, portal_app, sign_in

PATIENT = "patient"
# Workspace pages that are not menu sections, and the roles that may open them.
PAGES: dict[str, frozenset[str]] = {
    "/schedule/week": STAFF,
    "/desk/register": frozenset({FRONTDESK, ADMIN}),
    **dict.fromkeys(
        ("/admin/users", "/admin/apps", "/admin/keys", "/admin/deliveries", "/admin/audit"),
        frozenset({ADMIN}),
    ),
}
MATRIX = {section.path: section.roles for section in SECTIONS} | PAGES
LOGINS = {
    PATIENT: "roles-pat",
    PRACTITIONER: "roles-doc",
    FRONTDESK: "roles-desk",
    ADMIN: "roles-admin",
}


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for client in portal_app(settings_factory):
        seed(client, "roles")  # the logins, and a schedule for the practitioner
        yield client


@pytest.mark.parametrize("role", sorted(LOGINS))
def test_each_role_opens_its_pages_and_meets_the_403_page_elsewhere(
    app: TestClient, role: str
) -> None:
    app.cookies.clear()
    sign_in(app, LOGINS[role], "/clinic/", site=CLINIC)
    wrong = []
    for path, roles in sorted(MATRIX.items()):
        answer = app.get(f"{CLINIC}{path}")
        refused = "You cannot see this page" in answer.text
        expected = (200, False) if role in roles else (403, True)
        if (answer.status_code, refused) != expected:
            wrong.append(f"{path}: {answer.status_code} (expected {expected[0]})")
    assert not wrong, f"{role}: {wrong}"


@pytest.mark.parametrize("role", sorted(STAFF))
def test_each_staff_menu_lists_the_sections_its_role_may_open(app: TestClient, role: str) -> None:
    app.cookies.clear()
    sign_in(app, LOGINS[role], "/clinic/", site=CLINIC)
    page = app.get(f"{CLINIC}/schedule/week").text
    menu = page.split('aria-label="Workspace"', 1)[1].split("</nav>", 1)[0]
    shown = set(re.findall(r'href="/clinic([^"]*)"', menu))
    assert shown == {s.path for s in SECTIONS if role in s.roles}
