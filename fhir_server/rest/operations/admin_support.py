"""What the admin console's operations share: their definitions, inputs, outputs and audit.

The operations that run the server itself (accounts, SMART apps, signing
keys: `admin_users`, `admin_apps`, `admin_keys`) are system-level operations
over records that are not FHIR resources. They are registered only with
SMART on (`admin_operations`), and only an admin's token may run them: the
role table (`auth.roles.ADMIN_OPERATIONS`) refuses everyone else at the one
gate, so no handler checks the caller. Each change is recorded twice: the
gate's AuditEvent of the operation (who, when, answered or refused) and a
security event naming what it acted on (`audit.recorder.TARGETS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fhir_server.audit.context import client_address
from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.policy import TokenContext
from fhir_server.auth.users import AccountError, NotRegistered
from fhir_server.fhir.errors import BadRequest, MethodNotAllowed, NotFound, Unprocessable
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, inputs
from fhir_server.rest.services import Operation, Services

AdminHandler = Callable[[AuthComponents, Services, FhirRequest], Awaitable[FhirResponse]]
# Answers that carry a secret, or that a shared cache must not keep.
NO_STORE = {"Cache-Control": "no-store"}


def admin_definition(
    code: str, description: str, parameters: list[dict[str, Any]], *, changes: bool
) -> dict[str, Any]:
    return definition(code, None, f"{description} Admins only.", parameters, affects_state=changes)


def bind(auth: AuthComponents, handler: AdminHandler) -> Callable[..., Awaitable[FhirResponse]]:
    async def run(services: Services, req: FhirRequest) -> FhirResponse:
        return await handler(auth, services, req)

    return run


def operation(auth: AuthComponents, defined: dict[str, Any], handler: AdminHandler) -> Operation:
    return Operation(defined, bind(auth, handler))


def method(req: FhirRequest, code: str, changes: bool) -> None:
    """A change is invoked with POST; a listing with GET (or POST, as FHIR allows)."""
    if changes and req.method != "POST":
        raise MethodNotAllowed(f"${code} changes data: invoke it with POST.")
    if req.method not in ("GET", "POST"):
        raise MethodNotAllowed(f"${code} is invoked with GET or POST.")


class Inputs:
    """An operation's inputs by name, read as the strings and flags the domain takes."""

    def __init__(self, req: FhirRequest) -> None:
        self.found = inputs(req)

    def text(self, name: str, *, required: bool = False) -> str | None:
        values = self.found.get(name) or []
        if len(values) > 1:
            raise BadRequest(f"{name} is given more than once.", expression=(name,))
        value = values[0] if values else None
        if isinstance(value, dict):
            value = value.get("reference")
        if value is None or value == "":
            if required:
                raise BadRequest(f"{name} is required.", expression=(name,))
            return None
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string.", expression=(name,))
        return value.strip()

    def texts(self, name: str) -> list[str]:
        values = self.found.get(name) or []
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise BadRequest(f"{name} must be non-empty strings.", expression=(name,))
        return [v.strip() for v in values]

    def flag(self, name: str) -> bool | None:
        values = self.found.get(name) or []
        if len(values) > 1:
            raise BadRequest(f"{name} is given more than once.", expression=(name,))
        if not values or isinstance(values[0], bool):
            return values[0] if values else None
        if values[0] not in ("true", "false"):
            raise BadRequest(f"{name} must be true or false.", expression=(name,))
        return bool(values[0] == "true")


@contextmanager
def account_errors() -> Iterator[None]:
    """The domain's refusals as OperationOutcomes: 404 for an unknown name, else 422."""
    try:
        yield
    except NotRegistered as error:
        raise NotFound(str(error)) from None
    except AccountError as error:
        raise Unprocessable(str(error)) from None


async def record(
    auth: AuthComponents,
    req: FhirRequest,
    event: str,
    target: tuple[str, str],
    detail: str | None = None,
) -> None:
    """The security event for an admin's change, naming the admin and what they acted on."""
    ctx = req.auth
    who = ctx.sub if isinstance(ctx, TokenContext) else None
    await auth.audit.record(
        event,
        success=True,
        who=who,
        client_id=ctx.client_id if isinstance(ctx, TokenContext) else None,
        address=client_address.get(),
        detail=detail,
        target=target,
    )


def part(name: str, value: Any) -> dict[str, Any] | None:
    """One Parameters part, typed by its Python value (None: left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {"name": name, "valueBoolean": value}
    if isinstance(value, int):
        return {"name": name, "valueInteger": value}
    return {"name": name, "valueString": str(value)}


def group(name: str, *parts: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": name, "part": [p for p in parts if p is not None]}


def parameters(*entries: dict[str, Any] | None, status: int = 200) -> FhirResponse:
    body = {"resourceType": "Parameters", "parameter": [e for e in entries if e is not None]}
    return FhirResponse(status, body, dict(NO_STORE))
