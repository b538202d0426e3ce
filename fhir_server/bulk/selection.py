"""Which stored rows a job exports, per type: its criteria turned into store filters.

A type's rows are those that meet, all together: `_since` (as
`_lastUpdated=ge`; the runner leaves out rows changed after the transaction
time, a cheaper check there than in the query), the cohort
(at group level, the Group's members' compartments), one of the type's
`_typeFilter` queries, and the requester's read limits (its scopes' criteria,
exactly as a search made with its token carries them). The search parameters
are the server's own (`fhir.search_params`), run by the search engine, so an
export selects what the same search would.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fhir_server.auth.compartment import compartment_params, reference_key
from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.search_syntax import SearchParser
from fhir_server.settings import Settings
from fhir_server.store.resources import ResourceStore
from fhir_server.store.search_engine import SearchEngine, reach_of

Params = list[tuple[str, str]]
# Members per query clause: a large Group becomes several clauses ORed together.
_MEMBERS_PER_CLAUSE = 200


class Selection:
    def __init__(self, store: ResourceStore, settings: Settings) -> None:
        self.store = store
        self.parser = SearchParser(
            settings.base_url, settings.default_page_size, settings.max_page_size
        )
        self.engine = SearchEngine(store)

    async def filters(
        self, job: dict[str, Any], rtype: str, limits: ReadLimits | None
    ) -> list[dict[str, Any]]:
        """Store filters whose union is the type's rows to export ([]: none)."""
        reach = reach_of(self.parser, limits)
        required = [] if reach is None else reach(rtype)
        if required is None:
            return []
        window: Params = [("_lastUpdated", f"ge{job['since']}")] if job.get("since") else []
        queries = [parse_qsl(q) for t, q in job["type_filters"] if t == rtype] or [[]]
        out: list[dict[str, Any]] = []
        for cohort in await self._cohorts(job, rtype):
            for query in queries:
                criteria = self.parser.parse(rtype, [*window, *cohort, *query]).criteria
                out += await self.engine.filters(rtype, [*criteria, *required], reach)
        return out

    async def _cohorts(self, job: dict[str, Any], rtype: str) -> list[Params]:
        """Criteria alternatives that place a row in the job's cohort ([[]]: everyone)."""
        if job["level"] != "group":
            return [[]]
        members = await self._members(str(job["group"]))
        out: list[Params] = []
        for start in range(0, len(members), _MEMBERS_PER_CLAUSE):
            batch = members[start : start + _MEMBERS_PER_CLAUSE]
            if rtype == "Patient":
                out.append([("_id", ",".join(batch))])
                continue
            references = ",".join(f"Patient/{m}" for m in batch)
            out += [[(param, references)] for param in compartment_params().get(rtype, ())]
        return out

    async def _members(self, group_id: str) -> list[str]:
        """The ids of the Group's Patient members, as the Group stands now."""
        current = await self.store.current("Group", group_id)
        group = current.resource if current is not None and not current.deleted else None
        ids: list[str] = []
        for member in (group or {}).get("member", []):
            key = reference_key(str((member.get("entity") or {}).get("reference", "")))
            if key and key.startswith("Patient/") and not member.get("inactive"):
                ids.append(key.partition("/")[2])
        return sorted(set(ids))
