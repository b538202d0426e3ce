"""Where the packaged data folders (`profiles/`, `terminology/`) live.

In a checkout (and an editable install) they sit at the project root; a wheel
carries them inside the package under `_data/`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

_PACKAGE = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    bundled = _PACKAGE / "_data" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name


@cache
def load_json_folder(name: str) -> tuple[dict[str, Any], ...]:
    """Every JSON document in a data folder, in file-name order."""
    folder = data_dir(name)
    return tuple(orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.json")))
