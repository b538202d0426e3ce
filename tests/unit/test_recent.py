"""`Recent` keeps a value for its seconds and no longer, and at most `size` of them."""

from __future__ import annotations

import time

import pytest

from fhir_server.recent import Recent


def test_a_value_is_kept_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    recent: Recent[str, int] = Recent(seconds=30, size=10)
    recent.put("a", 1)
    now[0] += 29.9
    assert recent.get("a") == 1
    now[0] += 0.1
    assert recent.get("a") is None
    assert recent.get("never put") is None


def test_the_oldest_go_first_beyond_the_size() -> None:
    recent: Recent[str, int] = Recent(seconds=60, size=2)
    recent.put("a", 1)
    recent.put("b", 2)
    recent.put("a", 3)  # put again: now the newest
    recent.put("c", 4)
    assert (recent.get("a"), recent.get("b"), recent.get("c")) == (3, None, 4)
