"""Every setting is documented in the README's settings table, with its real default.

The table rows look like: | `FHIR_PORT` | `8000` | Port `serve` listens on. |
A field added to `Settings` without a row (or a row left behind for a removed
field, or a default that drifted) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo

from fhir_server.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\|\s*`(FHIR_[A-Z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|", re.MULTILINE)


def _documented() -> dict[str, tuple[str, str]]:
    """FHIR_X -> (default cell, meaning cell) for every row of the settings table."""
    return {m[1]: (m[2].strip(), m[3].strip()) for m in _ROW.finditer(README.read_text())}


def _variable(name: str) -> str:
    return f"FHIR_{name.upper()}"


def _shown(default: Any) -> str | None:
    """How the default must appear in its cell; None when it is not a plain scalar."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, str | int | float | Path):
        return str(default)
    return None


def test_the_readme_has_a_settings_table() -> None:
    assert len(_documented()) >= 5, "README.md has no table of FHIR_* settings"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_has_a_row_with_its_default(name: str) -> None:
    field: FieldInfo = Settings.model_fields[name]
    documented = _documented()
    variable = _variable(name)
    assert variable in documented, f"{variable} is missing from the README settings table"
    default_cell, meaning = documented[variable]
    shown = _shown(field.get_default(call_default_factory=True))
    if shown is not None:
        assert shown in default_cell, f"{variable}: README says {default_cell!r}, code {shown!r}"
    assert meaning, f"{variable} has no description in the README"


def test_no_row_documents_a_setting_that_does_not_exist() -> None:
    known = {_variable(name) for name in Settings.model_fields}
    assert set(_documented()) <= known
