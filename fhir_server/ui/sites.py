"""The web UI's two sites, built and mounted on the server's app."""

from __future__ import annotations

from fastapi import FastAPI

from fhir_server.settings import Settings
from fhir_server.ui import clinic, portal
from fhir_server.ui.client import clinic_client, portal_client
from fhir_server.ui.clinic.roles import SECTIONS
from fhir_server.ui.session import RedisConnect, SessionStore
from fhir_server.ui.web import create_site, routers_of


def _(message: str) -> str:
    """Marks a site's name for the catalogues; pages translate it when they render."""
    return message


def mount_sites(app: FastAPI, settings: Settings, connect: RedisConnect) -> None:
    """Mount the patient portal at `/portal` and the clinic workspace at `/clinic`."""
    for client, name, pages, sections in (
        (portal_client(settings), _("Clinic portal"), portal, []),
        (clinic_client(settings), _("Clinic workspace"), clinic, SECTIONS),
    ):
        sessions = SessionStore(connect, settings, client.client_id)
        site = create_site(settings, app, sessions, client, name, routers_of(pages), sections)
        app.mount(client.path, site)
