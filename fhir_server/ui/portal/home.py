"""The portal's front page: a start page for visitors, the menu for a signed-in patient."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.ui.web import Visitor, signed_in

router = APIRouter()


def display_name(patient: dict[str, Any]) -> str:
    """How the patient's record names them (the official name first), for the page."""
    names = patient.get("name") or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    if name.get("text"):
        return str(name["text"])
    return " ".join([*name.get("given", []), name.get("family", "")]).strip()


@router.get("/")
async def home(request: Request, page: Visitor) -> Response:
    if page.session is None or not page.session.signed_in:
        return page.render("portal/start.html", title=page._("Book and manage your appointments"))
    signed = await signed_in(request)
    patient = await signed.api.read("Patient", signed.api.patient) if signed.api.patient else {}
    return signed.render(
        "portal/home.html", title=page._("Your appointments"), name=display_name(patient)
    )
