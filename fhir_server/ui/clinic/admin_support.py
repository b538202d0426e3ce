"""What the admin console's pages share: Parameters in and out, refusals, confirmations.

The console is a client of the admin operations (`$users`, `$apps`, ...,
`rest.operations.admin_*`): it sends Parameters and reads Parameters back,
with the signed-in admin's own token. A page is opened by admins only
(`Admin`); the API refuses anyone else anyway. A destructive action is asked
for twice: the first POST shows what will happen and a form to confirm it,
whose POST carries `confirmed=yes`.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from fhir_server.ui.fhir_api import PortalApi, PortalApiError
from fhir_server.ui.web import FieldError, SignedInPage

CONFIRMED = "yes"


def parameters(**values: Any) -> dict[str, Any]:
    """A Parameters resource: strings, booleans, and lists of strings (repeated)."""
    found = []
    for name, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            if one is None or one == "":
                continue
            kind = "valueBoolean" if isinstance(one, bool) else "valueString"
            found.append({"name": name, kind: one})
    return {"resourceType": "Parameters", "parameter": found}


def _value(part: dict[str, Any]) -> Any:
    return next((v for k, v in part.items() if k.startswith("value")), None)


def groups(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Each `name` parameter's parts by name; a repeated part is a list."""
    out = []
    for parameter in body.get("parameter", []):
        if parameter.get("name") != name:
            continue
        fields: dict[str, Any] = {}
        for part in parameter.get("part", []):
            fields.setdefault(part["name"], []).append(_value(part))
        out.append({k: v if len(v) > 1 else v[0] for k, v in fields.items()})
    return out


def single(body: dict[str, Any], name: str) -> Any:
    """The value of the first top-level `name` parameter, else None."""
    return next((_value(p) for p in body.get("parameter", []) if p.get("name") == name), None)


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def refusal(
    page: SignedInPage, error: PortalApiError, field: str | None = None
) -> list[FieldError]:
    """The API's refusal as the page's errors (its texts, in English, name no patient)."""
    return [FieldError(message, field) for message in error.messages] or [
        FieldError(page._("The server refused this. Nothing was changed."), field)
    ]


async def run(
    page: SignedInPage, path: str, **values: Any
) -> tuple[dict[str, Any], list[FieldError]]:
    """POST an admin operation; its answer, or the errors to show."""
    try:
        return await page.api.operation(path, parameters(**values)), []
    except PortalApiError as error:
        return {}, refusal(page, error)


async def listing(api: PortalApi, operation: str, name: str) -> list[dict[str, Any]]:
    return groups(await api.request("GET", operation), name)


def confirmation(
    page: SignedInPage,
    *,
    title: str,
    message: str,
    action: str,
    fields: dict[str, str],
    button: str,
    back: str,
) -> HTMLResponse:
    """The page that asks for a destructive action once more."""
    return page.render(
        "clinic/admin_confirm.html",
        title=title,
        message=message,
        action=action,
        fields={**fields, "confirmed": CONFIRMED},
        button=button,
        back=back,
    )


def not_found(page: SignedInPage, title: str, message: str) -> HTMLResponse:
    """The 404 page for an account or app that is not there (both texts translated)."""
    return page.render("error.html", title=title, status=404, message=message)


def confirmed(form: FormData) -> bool:
    return text(form, "confirmed") == CONFIRMED
