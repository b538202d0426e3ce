"""Languages of the web UI: English (the source text) and French, through gettext.

Catalogues are the `.po` files under `translations/<lang>/` (several per
language, one per part of the UI, so parts are translated apart); they are
compiled in memory when first used, so no binary `.mo` file is kept in git.
The language of a request is, in order: `?lang=`, the `lang` cookie (set when
the user switches), the browser's `Accept-Language`, then English.
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
LANG_COOKIE = "lang"
_CATALOGUES = Path(__file__).parent / "translations"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The merged catalogue of `lang` (English needs none: its messages are the source)."""
    merged: gettext.NullTranslations = gettext.NullTranslations()
    for po_file in sorted((_CATALOGUES / lang).glob("*.po")) if lang != DEFAULT else []:
        with po_file.open("rb") as source:
            catalog = read_po(source, locale=lang)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        part = gettext.GNUTranslations(compiled)
        part.add_fallback(merged)
        merged = part
    return merged


def supported(lang: str | None) -> str | None:
    return lang if lang in LANGUAGES else None


def from_accept_language(header: str) -> str | None:
    """The supported language the browser prefers most (q-values honoured), if any."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if quality > 0 and primary in LANGUAGES:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else None


def choose(query: str | None, cookie: str | None, accept_language: str) -> str:
    return supported(query) or supported(cookie) or from_accept_language(accept_language) or DEFAULT
