"""The clinic workspace's front page: a start page for visitors, the role's home for staff."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.ui.clinic.roles import PRACTITIONER, SECTIONS, STAFF
from fhir_server.ui.web import RoleRefused, Visitor, signed_in

router = APIRouter()


@router.get("/")
async def home(request: Request, page: Visitor) -> Response:
    if page.session is None or not page.session.signed_in:
        return page.render("clinic/start.html", title=page._("Clinic workspace"))
    signed = await signed_in(request)
    if signed.role not in STAFF:  # a patient signed in here: the portal is theirs
        raise RoleRefused
    if signed.role == PRACTITIONER:  # a practitioner's day starts on today's schedule
        return signed.redirect(signed.url("/schedule"))
    parts = [
        (signed.url(section.path), signed._(section.name))
        for section in SECTIONS
        if section.path != "/" and signed.role in section.roles
    ]
    return signed.render("clinic/home.html", title=page._("Clinic workspace"), parts=parts)
