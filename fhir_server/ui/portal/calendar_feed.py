"""Add your appointments to your calendar: the patient's private calendar feed URL.

The page gets the URL from `Patient/{me}/$calendar-feed` (README "Calendar
feeds"), as any SMART app would. Getting one is a POST: a new URL stops the
earlier one, so merely opening the page must not. The URL is a secret that
opens the patient's appointments, so it is shown in the answer to that POST
only (never in an address, which browsers keep in their history), and the
page can stop the feed at once (`revoke=true`) when it may have leaked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.web import CheckedForm, FieldError, SignedIn, SignedInPage

router = APIRouter()

# What the API may refuse for reasons the patient can read about (their record gone, their
# token without the right); anything else is the service's problem, shown as such.
_REFUSALS = (403, 404, 410, 422)


def _render(
    page: SignedInPage,
    *,
    feed: dict[str, str] | None = None,
    stopped: bool = False,
    status: int = 200,
    errors: list[FieldError] | None = None,
) -> Response:
    return page.render(
        "portal/calendar_feed.html",
        title=page._("Add your appointments to your calendar"),
        status=status,
        errors=errors,
        feed=feed,
        stopped=stopped,
    )


async def _call(page: SignedInPage, revoke: bool) -> dict[str, Any] | Response:
    """The operation's answer, or the page saying it could not be done."""
    parameters: dict[str, Any] = {"resourceType": "Parameters"}
    if revoke:
        parameters["parameter"] = [{"name": "revoke", "valueBoolean": True}]
    try:
        return await page.api.operation(f"Patient/{page.api.patient}/$calendar-feed", parameters)
    except PortalApiError as error:
        if error.status not in _REFUSALS:
            raise
        message = page._("This could not be done. Try again later.")
        return _render(page, status=error.status, errors=[FieldError(message)])


@router.get("/calendar-feed")
async def calendar_feed(page: SignedIn) -> Response:
    return _render(page, stopped=page.request.query_params.get("stopped") == "1")


@router.post("/calendar-feed")
async def get_link(page: SignedIn, form: CheckedForm) -> Response:
    answer = await _call(page, revoke=False)
    if isinstance(answer, Response):
        return answer
    values = {
        p["name"]: str(p.get("valueUrl") or p.get("valueUri") or "")
        for p in answer.get("parameter", [])
    }
    return _render(page, feed={"url": values.get("url", ""), "webcal": values.get("webcal", "")})


@router.post("/calendar-feed/stop")
async def stop(page: SignedIn, form: CheckedForm) -> Response:
    answer = await _call(page, revoke=True)
    if isinstance(answer, Response):
        return answer
    return page.redirect(page.url("/calendar-feed", stopped="1"))
