"""The language of the authorization server's pages: English (the source text) or French.

The portal's users see these pages in the portal's language. In order: the OpenID Connect
`ui_locales` parameter (space-separated BCP 47 tags; the portal passes its own language,
and the sign-in and consent forms carry it on), the portal's `lang` cookie, the browser's
`Accept-Language`, then English. The French catalogue is `translations/fr.po`, compiled
in memory on first use (no binary `.mo` in git). A message the catalogue lacks stays in
English; templates mark such text `lang="en"` so a screen reader reads it as English.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = {"en": "English", "fr": "Français"}
DEFAULT = "en"
_CATALOGUES = Path(__file__).parent / "translations"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT:
        return gettext.NullTranslations()
    with (_CATALOGUES / f"{lang}.po").open("rb") as source:
        catalog = read_po(source, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _primary(tag: str) -> str | None:
    base = tag.strip().lower().split("-")[0]
    return base if base in LANGUAGES else None


def from_accept_language(header: str) -> str | None:
    """The supported language the browser ranks highest (q-values honoured), if any."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.partition(";")
        name, _, value = params.strip().partition("=")
        try:
            quality = float(value) if name.strip() == "q" else 1.0
        except ValueError:
            continue
        if quality > 0 and (lang := _primary(tag)):
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else None


def choose(ui_locales: str | None, cookie: str | None, accept_language: str) -> str:
    asked = next((lang for tag in (ui_locales or "").split() if (lang := _primary(tag))), None)
    return asked or _primary(cookie or "") or from_accept_language(accept_language) or DEFAULT
