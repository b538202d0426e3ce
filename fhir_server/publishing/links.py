"""The site's own URLs that published data points at (pure)."""

from __future__ import annotations

from fhir_server.settings import Settings


def site_origin(settings: Settings) -> str:
    """The server's external origin: the FHIR base without `/fhir`."""
    return settings.base_url.removesuffix("/fhir")


def portal_url(settings: Settings) -> str:
    """The patient portal, where a published Slot's deep link books it."""
    return f"{site_origin(settings)}/portal"


def feed_urls(settings: Settings, token: str) -> tuple[str, str]:
    """A calendar feed's https URL and its webcal:// twin (what calendar apps subscribe to)."""
    url = f"{site_origin(settings)}/calendar/{token}.ics"
    return url, "webcal://" + url.split("://", 1)[1]
