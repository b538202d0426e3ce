"""Rules of the web UI that hold for every page, checked on the source: the layering
(`ui/` talks to the API only), CSRF on every form handler, no inline script or style
(the CSP forbids them), and a French translation for every message."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from fastapi.routing import APIRoute

from fhir_server import languages
from fhir_server.ui import clinic, i18n, portal
from fhir_server.ui.sign_in import router as sign_in_router
from fhir_server.ui.web import checked_form, routers_of

UI = Path(__file__).resolve().parents[2] / "fhir_server" / "ui"
FORBIDDEN = ("fhir_server.store", "fhir_server.scheduling", "fhir_server.auth")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_ui_imports_nothing_from_store_scheduling_or_auth() -> None:
    modules = sorted(UI.rglob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        bad = {n for n in _imports(module) if n.startswith(FORBIDDEN)}
        assert not bad, f"{module.relative_to(UI)} imports {bad}"


def _depends_on(dependant: object, target: object) -> bool:
    for sub in getattr(dependant, "dependencies", []):
        if sub.call is target or _depends_on(sub, target):
            return True
    return False


def test_every_form_handler_checks_the_csrf_token() -> None:
    pages = [*routers_of(portal), *routers_of(clinic)]
    routes = [r for router in [sign_in_router, *pages] for r in router.routes]
    posts = [r for r in routes if isinstance(r, APIRoute) and r.methods - {"GET", "HEAD"}]
    assert len(posts) >= 2
    for route in posts:
        assert _depends_on(route.dependant, checked_form), f"{route.path} lacks CheckedForm"


_INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.I)


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    templates = sorted((UI / "templates").rglob("*.html"))
    assert templates
    for template in templates:
        found = _INLINE.search(template.read_text())
        assert found is None, f"{template.relative_to(UI)}: {found.group(0) if found else ''}"


def test_every_message_has_a_french_translation() -> None:
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    messages = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(UI), method_map, options, keywords={"_": None, "gettext": None}
        )
    }
    assert "Sign out" in messages and len(messages) > 40
    french = i18n.translations("fr")
    missing = sorted(m for m in messages if isinstance(m, str) and french.gettext(m) == m)
    assert not missing, f"no French for: {missing}"


def test_accept_language_ranks_by_quality() -> None:
    assert languages.from_accept_language("de, fr;q=0.4, en;q=0.8") == "en"
    assert languages.from_accept_language("fr-CA, en;q=0.9") == "fr"
    assert languages.from_accept_language("de, es") is None
    assert languages.from_accept_language("fr;q=0, en;q=bad") is None
    assert i18n.choose("xx", "fr", "en") == "fr"
    assert i18n.choose("en", "fr", "fr") == "en"
