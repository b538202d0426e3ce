"""The admin console's delivery problems and audit: messages that failed or wait (with
`Communication/[id]/$retry`), Subscriptions in error, and who accessed a patient's data in
a period (an `AuditEvent` search), on a page and as CSV.

All standard searches with the admin's token, but the retry: the console adds
nothing the API does not answer.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.fhir.audit_rows import COLUMNS, audit_row
from fhir_server.ui.clinic.admin_support import refusal
from fhir_server.ui.clinic.roles import Admin, _
from fhir_server.ui.fhir_api import PortalApi, PortalApiError, entries
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage

router = APIRouter()

PROBLEMS = "not-done,preparation,in-progress"
_PAGE = "200"
_PAGES = 25  # an audit period's events, at most this many pages of _PAGE
_ID = re.compile(r"^(Patient/)?([A-Za-z0-9\-.]{1,64})$")


STATES = {
    "not-done": _("Failed"),
    "preparation": _("Waiting"),
    "in-progress": _("Being sent"),
}


def _message_row(page: SignedInPage, message: dict[str, Any]) -> dict[str, Any]:
    def code(element: str) -> str:
        concepts = message.get(element) or [{}]
        return str((concepts[0].get("coding") or [{}])[0].get("code", ""))

    recipients = [r.get("reference", "") for r in message.get("recipient", [])]
    return {
        "id": message["id"],
        "event": code("category"),
        "channel": code("medium"),
        "recipient": ", ".join(recipients),
        "status": message.get("status"),
        "state": page._(STATES.get(str(message.get("status")), str(message.get("status")))),
        "reason": (message.get("statusReason") or {}).get("text", ""),
        "updated": message.get("meta", {}).get("lastUpdated", ""),
    }


async def _deliveries_page(
    page: SignedInPage, errors: list[FieldError] | None = None, status: int = 200
) -> Response:
    messages = await page.api.search(
        "Communication", [("status", PROBLEMS), ("_sort", "-_lastUpdated"), ("_count", "100")]
    )
    subscriptions = await page.api.search("Subscription", [("status", "error"), ("_count", "100")])
    return page.render(
        "clinic/admin_deliveries.html",
        title=page._("Delivery problems"),
        status=status,
        errors=errors,
        messages=[_message_row(page, m) for m in entries(messages, "Communication")],
        subscriptions=entries(subscriptions, "Subscription"),
        retried=page.request.query_params.get("retried"),
    )


@router.get("/admin/deliveries")
async def deliveries(page: Admin) -> Response:
    return await _deliveries_page(page)


@router.post("/admin/deliveries/{message_id}/retry")
async def retry(page: Admin, message_id: str, form: CheckedForm) -> Response:
    try:
        await page.api.request("POST", f"Communication/{message_id}/$retry")
    except PortalApiError as error:
        return await _deliveries_page(page, refusal(page, error), 400)
    return page.redirect(page.url("/admin/deliveries", retried=message_id))


# -- audit -------------------------------------------------------------------------------


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _audit_query(page: SignedInPage) -> tuple[dict[str, str], list[FieldError], list[Any]]:
    """The form's values, its errors, and the search they make (empty until asked)."""
    given = {k: page.request.query_params.get(k, "").strip() for k in ("patient", "since", "until")}
    if not any(given.values()):
        return given, [], []
    errors = []
    found = _ID.match(given["patient"])
    if not found:
        errors.append(FieldError(page._("Enter the patient's record id."), "patient"))
    since, until = _day(given["since"]), _day(given["until"])
    if since is None:
        errors.append(FieldError(page._("Enter the first day as a date."), "since"))
    if until is None:
        errors.append(FieldError(page._("Enter the last day as a date."), "until"))
    if since and until and until < since:
        errors.append(FieldError(page._("The last day must not be before the first."), "until"))
    if errors or found is None or since is None or until is None:
        return given, errors, []
    params = [
        ("patient", f"Patient/{found.group(2)}"),
        ("date", f"ge{since.isoformat()}"),
        ("date", f"lt{(until + timedelta(days=1)).isoformat()}"),
        ("_sort", "date"),
        ("_count", _PAGE),
    ]
    return given, [], params


async def _events(api: PortalApi, params: list[Any]) -> list[dict[str, Any]]:
    """Every event of the search, following its next links."""
    found: list[dict[str, Any]] = []
    for _page in range(_PAGES):
        bundle = await api.search("AuditEvent", params)
        found += entries(bundle, "AuditEvent")
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            break
        params = parse_qsl(urlsplit(following[0]).query)
    return found


@router.get("/admin/audit")
async def audit(page: Admin) -> Response:
    given, errors, params = _audit_query(page)
    rows = [audit_row(e) for e in await _events(page.api, params)] if params else None
    return page.render(
        "clinic/admin_audit.html",
        title=page._("Who accessed a patient's data"),
        status=400 if errors else 200,
        errors=errors,
        form=given,
        rows=rows,
        csv_url=page.url("/admin/audit.csv", **given) if rows else None,
    )


@router.get("/admin/audit.csv")
async def audit_csv(page: Admin) -> Response:
    given, errors, params = _audit_query(page)
    if errors or not params:
        return page.redirect(page.url("/admin/audit", **given))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(audit_row(e) for e in await _events(page.api, params))
    name = f"audit-{given['patient'].rpartition('/')[2]}-{given['since']}-{given['until']}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
