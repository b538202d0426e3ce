"""The schedule pages' reads through the FHIR API: a fixed number of calls per page, never
one per row (the directory in one search with `_include`, the period's Appointments in one
search with `_include=Appointment:actor`).

A practitioner's token reads only their own Appointments (the API's gate); the pages offer
them only their own columns and refuse another clinician's with `OnlyOwnSchedule`, so they
are told why instead of seeing an empty day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from fhir_server.fhir.instants import fhir_instant
from fhir_server.recent import Recent
from fhir_server.ui.clinic import schedule_model as model
from fhir_server.ui.clinic.roles import PRACTITIONER
from fhir_server.ui.fhir_api import PortalApi, entries
from fhir_server.ui.web import SignedInPage

Resource = dict[str, Any]
PAGE_SIZE = "500"  # the API's largest page: a busy week of a whole clinic is one call
_MAX_PAGES = 20


class OnlyOwnSchedule(Exception):
    """A practitioner asked for another clinician's schedule."""


class UnknownClinician(Exception):
    """The clinician asked for has no Schedule here."""


@dataclass(frozen=True)
class Scope:
    """Whose schedule a page shows: `choices` the user may pick, `shown` the columns."""

    choices: list[model.Clinician]
    shown: list[model.Clinician]
    choice: str  # the PractitionerRole reference chosen, "" for all of `choices`

    @property
    def zone(self) -> ZoneInfo:
        return self.shown[0].zone if self.shown else ZoneInfo("UTC")

    @property
    def names(self) -> dict[str, str]:
        return {c.ref: c.name for c in self.choices}


async def everything(
    api: PortalApi, resource_type: str, params: list[tuple[str, str]]
) -> list[Resource]:
    """Every entry of a search, following `next` links (one call while a page holds it all)."""
    bundle = await api.search(resource_type, [*params, ("_count", PAGE_SIZE)])
    found = entries(bundle)
    for _ in range(_MAX_PAGES):
        link = next(
            (ln["url"] for ln in bundle.get("link", []) if ln.get("relation") == "next"), None
        )
        if link is None:
            break
        parts = urlsplit(str(link))
        bundle = await api.search(parts.path.rsplit("/", 1)[-1], parse_qsl(parts.query))
        found.extend(entries(bundle))
    return found


# The clinicians of the directory, per session, for the next pages (`fhir_server/recent.py`).
_directories: Recent[str, list[model.Clinician]] = Recent(seconds=30, size=4096)


async def _everyone(page: SignedInPage) -> list[model.Clinician]:
    """Every clinician with an active Schedule: one search, kept for the session's next
    pages a short while (moving between days and weeks reads only the Appointments)."""
    everyone = _directories.get(page.session.id)
    if everyone is None:
        directory = await everything(
            page.api,
            "Schedule",
            [
                ("active", "true"),
                ("_include", "Schedule:actor"),
                ("_include:iterate", "PractitionerRole:practitioner"),
            ],
        )
        everyone = model.clinicians(directory)
        _directories.put(page.session.id, everyone)
    return everyone


async def scope_of(page: SignedInPage, choice: str) -> Scope:
    """The clinicians the user may see (a practitioner: their own) and the ones shown."""
    everyone = await _everyone(page)
    choices = everyone
    if page.role == PRACTITIONER:
        tokens = page.session.tokens
        choices = model.own(everyone, tokens.fhir_user if tokens is not None else None)
    if not choice:
        return Scope(choices, choices, "")
    chosen = [c for c in choices if c.ref == choice]
    if not chosen:
        raise OnlyOwnSchedule if any(c.ref == choice for c in everyone) else UnknownClinician
    return Scope(choices, chosen, choice)


async def appointments(
    api: PortalApi, scope: Scope, start: datetime, end: datetime, now: datetime
) -> list[model.Visit]:
    """The visits of the shown clinicians from `start` to `end` (UTC), in one search."""
    if not scope.shown:
        return []
    params = [
        ("date", f"ge{fhir_instant(start)}"),
        ("date", f"lt{fhir_instant(end)}"),
        ("actor", ",".join(c.ref for c in scope.shown)),
        ("_include", "Appointment:actor"),
    ]  # no `_sort`: the model orders the visits, and a sorted search costs the store more
    found = await everything(api, "Appointment", params)
    return model.visits(found, scope.names, scope.zone, now)
