"""The language of the authorization server's pages: English (the source text) or French.

The portal's users see these pages in the portal's language. In order: the OpenID Connect
`ui_locales` parameter (space-separated BCP 47 tags; the portal passes its own language,
and the sign-in and consent forms carry it on), the portal's `lang` cookie, the browser's
`Accept-Language`, then English (`fhir_server.languages`, shared with the web UI). The
French catalogue is `translations/fr.po`. A message the catalogue lacks stays in English;
templates mark such text `lang="en"` so a screen reader reads it as English.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

from fhir_server.languages import DEFAULT, LANGUAGES, catalogue, from_accept_language, primary

__all__ = ["DEFAULT", "LANGUAGES", "choose", "translations"]

_CATALOGUES = Path(__file__).parent / "translations"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    return catalogue(lang, [_CATALOGUES / f"{lang}.po"])


def choose(ui_locales: str | None, cookie: str | None, accept_language: str) -> str:
    asked = next((lang for tag in (ui_locales or "").split() if (lang := primary(tag))), None)
    return asked or primary(cookie or "") or from_accept_language(accept_language) or DEFAULT
