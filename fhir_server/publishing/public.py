"""What a clinic marks public, and the anonymous caller that sees only that.

A Location or Schedule is published when its `meta.tag`
holds `PUBLIC_TAG` (system `PUBLICATION_SYSTEM`, code `public`): a tag, so
it is set and searched with the standard `_tag` parameter and needs no
profile. A Slot is published when its Schedule is.

`PUBLIC_SCOPES` are the SMART scopes of the anonymous caller that
`$bulk-publish` and its files run as: read and search of the three published
types (Location, Schedule, Slot), each restricted (`?param=`) to what carries
the tag, and nothing else.
The access gate applies them like any token's: every query carries the
restriction, every resource leaving is judged by it.
"""

from __future__ import annotations

from fhir_server.scheduling.extensions import BASE

PUBLICATION_SYSTEM = f"{BASE.rsplit('/', 1)[0]}/CodeSystem/publication"
PUBLIC_CODE = "public"
PUBLIC_TAG = {"system": PUBLICATION_SYSTEM, "code": PUBLIC_CODE, "display": "Published"}
PUBLISHED_TYPES = ("Location", "Schedule", "Slot")

_TAGGED = f"_tag={PUBLICATION_SYSTEM}|{PUBLIC_CODE}"
PUBLIC_SCOPES = " ".join(
    (
        f"system/Location.rs?{_TAGGED}",
        f"system/Schedule.rs?{_TAGGED}",
        f"system/Slot.rs?schedule.{_TAGGED}",
    )
)
PUBLIC_CLIENT = "public-availability"
