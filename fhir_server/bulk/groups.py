"""Groups of a practitioner's or a location's patients, the cohorts of `Group/[id]/$export`.

A plain R4 Group (`type` person, `actual` true), one member per patient who
has an Appointment naming the practitioner (directly or through one of their
PractitionerRoles) or the location as a participant. Its id is derived from
what it gathers (`practitioner-ID-patients`, `location-ID-patients`), so
running the command again brings the same Group up to date (a new version)
instead of adding another. An admin or a backend token with
`system/Group.cu` can equally write any Group through the API.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.compartment import reference_key
from fhir_server.fhir.search_syntax import SearchParser
from fhir_server.settings import Settings
from fhir_server.store.export_store import ExportStore
from fhir_server.store.resources import ResourceStore, Version, body_of
from fhir_server.store.search_engine import SearchEngine


class Cohorts:
    def __init__(self, store: ResourceStore, settings: Settings) -> None:
        self.store = store
        self.parser = SearchParser(
            settings.base_url, settings.default_page_size, settings.max_page_size
        )
        self.engine = SearchEngine(store)
        self.rows = ExportStore(store.database)

    async def of_practitioner(self, practitioner: str) -> Version:
        await self.store.read("Practitioner", practitioner)  # NotFound / Gone for a bad id
        roles = await self._ids("PractitionerRole", [("practitioner", practitioner)])
        actors = [f"Practitioner/{practitioner}", *(f"PractitionerRole/{r}" for r in roles)]
        return await self._save(
            f"practitioner-{practitioner}-patients",
            f"Patients of Practitioner/{practitioner}",
            await self._patients(actors),
            {"managingEntity": {"reference": f"Practitioner/{practitioner}"}},
        )

    async def of_location(self, location: str) -> Version:
        await self.store.read("Location", location)
        return await self._save(
            f"location-{location}-patients",
            f"Patients seen at Location/{location}",
            await self._patients([f"Location/{location}"]),
            {},
        )

    async def _ids(self, rtype: str, params: list[tuple[str, str]]) -> list[str]:
        criteria = self.parser.parse(rtype, params).criteria
        filters = await self.engine.filters(rtype, criteria)
        return [row["_id"] async for row in self.rows.rows_after(rtype, filters, None)]

    async def _patients(self, actors: list[str]) -> list[str]:
        """The Patients taking part in the actors' Appointments (streamed, not all loaded)."""
        criteria = self.parser.parse("Appointment", [("actor", ",".join(actors))]).criteria
        filters = await self.engine.filters("Appointment", criteria)
        found: set[str] = set()
        async for row in self.rows.rows_after("Appointment", filters, None):
            for participant in (body_of(row) or {}).get("participant", []):
                key = reference_key(str((participant.get("actor") or {}).get("reference", "")))
                if key and key.startswith("Patient/"):
                    found.add(key)
        return sorted(found)

    async def _save(
        self, gid: str, name: str, patients: list[str], extra: dict[str, Any]
    ) -> Version:
        group: dict[str, Any] = {
            "resourceType": "Group",
            "id": gid,
            "type": "person",
            "actual": True,
            "name": name,
            "quantity": len(patients),
            **extra,
        }
        if patients:
            group["member"] = [{"entity": {"reference": p}} for p in patients]
        version, _ = await self.store.update(group)
        return version
