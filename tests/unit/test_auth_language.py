"""The language of the authorization server's pages and its French catalogue."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from fhir_server.auth import language

TEMPLATES = Path(language.__file__).parent / "templates"


def test_every_text_of_the_templates_has_its_french() -> None:
    french = language.translations("fr")
    missing = [
        message
        for _file, _line, message, *_ in extract_from_dir(
            str(TEMPLATES), method_map=[("**.html", "jinja2")]
        )
        if french.gettext(message) == message
    ]
    assert missing == []


def test_ui_locales_then_cookie_then_accept_language_then_english() -> None:
    assert language.choose("fr-CA en", "en", "en") == "fr"
    assert language.choose("de fr", None, "en") == "fr"  # first supported tag
    assert language.choose(None, "fr", "en-GB") == "fr"
    assert language.choose(None, "xx", "de, fr;q=0.8, en;q=0.5") == "fr"
    assert language.choose(None, None, "fr;q=0, en") == "en"
    assert language.choose(None, None, "fr;q=oops, de") == "en"
    assert language.choose("", None, "") == "en"
