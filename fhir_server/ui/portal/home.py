"""The portal's front page: a start page for visitors, the menu for a signed-in patient."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.web import Visitor

router = APIRouter()


@router.get("/")
async def home(page: Visitor) -> Response:
    if page.session is not None and page.session.signed_in:
        return page.render("portal/home.html", title=page._("Your appointments"))
    return page.render("portal/start.html", title=page._("Book and manage your appointments"))
