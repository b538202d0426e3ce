"""Languages of the web UI: English (the source text) and French, through gettext.

Catalogues are the `.po` files under `translations/<lang>/` (several per
language, one per part of the UI, so parts are translated apart), read as
`fhir_server.languages` reads them for the authorization server's pages too.
The language of a request is, in order: `?lang=`, the `lang` cookie (set when
the user switches), the browser's `Accept-Language`, then English.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

from fhir_server.languages import DEFAULT, LANGUAGES, catalogue, from_accept_language

__all__ = ["DEFAULT", "LANGUAGES", "LANG_COOKIE", "choose", "supported", "translations"]

LANG_COOKIE = "lang"
_CATALOGUES = Path(__file__).parent / "translations"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The merged catalogue of `lang`."""
    return catalogue(lang, sorted((_CATALOGUES / lang).glob("*.po")))


def supported(lang: str | None) -> str | None:
    return lang if lang in LANGUAGES else None


def choose(query: str | None, cookie: str | None, accept_language: str) -> str:
    return supported(query) or supported(cookie) or from_accept_language(accept_language) or DEFAULT
