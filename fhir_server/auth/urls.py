"""Where the authorization server lives: `/auth` beside the FHIR base URL."""

from __future__ import annotations

from fhir_server.settings import Settings


def auth_base(settings: Settings) -> str:
    """The authorization server's base URL: `/auth` beside the FHIR base."""
    base = settings.base_url
    root = base[: -len("/fhir")] if base.endswith("/fhir") else base
    return f"{root}/auth"


def portal_url(settings: Settings) -> str:
    """The patient portal's start page, where the account pages lead back to."""
    return f"{auth_base(settings).removesuffix('/auth')}/portal/"
