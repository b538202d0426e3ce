"""The languages the server's web pages speak: English (the source text) and French.

The authorization server's pages (`auth/`) and the web UI (`ui/`) must agree
on what a browser asks for and on how a catalogue is read, and neither layer
may import the other, so both take it from here (as both take `settings`).
Catalogues are `.po` files compiled in memory on first use: no binary `.mo`
file is kept in git.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterable
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = {"en": "English", "fr": "Français"}
DEFAULT = "en"


def primary(tag: str) -> str | None:
    """The supported language of a BCP 47 tag (`fr-CA` -> `fr`), if it is one."""
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
        if quality > 0 and (lang := primary(tag)):
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else None


def catalogue(lang: str, po_files: Iterable[Path]) -> gettext.NullTranslations:
    """The messages of `po_files` merged in order (a later file wins), in `lang`; English
    needs none, its messages being the source text."""
    merged = gettext.NullTranslations()
    if lang == DEFAULT:
        return merged
    for po_file in po_files:
        with po_file.open("rb") as source:
            catalog = read_po(source, locale=lang)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        part = gettext.GNUTranslations(compiled)
        part.add_fallback(merged)
        merged = part
    return merged
