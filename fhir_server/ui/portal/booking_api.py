"""The FHIR client the booking pages need: the part of the portal's PortalApi they use.

The pages are written against this protocol so that they read as plain FHIR
calls (read, search, operation, update) with the signed-in patient's token and
nothing else: the server decides what the patient may see and do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fhir_server.ui.fhir_api import PortalApiError

Resource = dict[str, Any]
Params = Mapping[str, str] | Sequence[tuple[str, str]]


class BookingClient(Protocol):
    """A FHIR client bound to one signed-in patient (`patient`: the token's Patient id)."""

    patient: str | None

    async def read(self, resource_type: str, resource_id: str) -> Resource: ...

    async def search(self, resource_type: str, params: Params | None = None) -> Resource: ...

    async def operation(self, path: str, parameters: Resource | None = None) -> Resource: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Resource | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Resource: ...


def parameters(*items: Resource) -> Resource:
    return {"resourceType": "Parameters", "parameter": list(items)}


async def update(api: BookingClient, resource: Resource) -> Resource:
    """PUT the resource back (version-checked by the server when it carries meta)."""
    path = f"{resource['resourceType']}/{resource['id']}"
    version = resource.get("meta", {}).get("versionId")
    headers = {"If-Match": f'W/"{version}"'} if version else None
    return await api.request("PUT", path, json_body=resource, headers=headers)


def patient_of(api: BookingClient) -> str:
    """The signed-in patient's id; a user without one cannot book (the server would refuse)."""
    if not api.patient:
        raise PortalApiError(403, {"resourceType": "OperationOutcome", "issue": []})
    return api.patient
