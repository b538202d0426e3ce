"""Normal forms shared by indexing and querying: folded strings, date and number ranges."""

from __future__ import annotations

import pytest

from fhir_server.fhir.search_values import (
    date_range,
    fold,
    number_range,
    split_escaped,
    unescape,
)


@pytest.mark.parametrize(
    ("text", "folded"),
    [("Müller", "muller"), ("JOSÉ", "jose"), ("Straße", "strasse"), ("Ångström", "angstrom")],
)
def test_fold_drops_case_and_accents(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [
        ("2026", "20260101000000000000", "20261231235959999999"),
        ("2026-02", "20260201000000000000", "20260228235959999999"),
        ("2024-02", "20240201000000000000", "20240229235959999999"),
        ("2026-03-05", "20260305000000000000", "20260305235959999999"),
        # Local time with an offset is compared in UTC: 00:30 at +01:00 is 23:30 the day before.
        ("2026-03-29T00:30:00+01:00", "20260328233000000000", "20260328233000999999"),
        ("2026-03-29T03:30:00+02:00", "20260329013000000000", "20260329013000999999"),
        ("2026-03-05T10:15", "20260305101500000000", "20260305101559999999"),
        ("2026-03-05T10:15:30Z", "20260305101530000000", "20260305101530999999"),
        ("2026-03-05T10:15:30.5Z", "20260305101530500000", "20260305101530599999"),
        ("2026-03-05T10:15:30.123456Z", "20260305101530123456", "20260305101530123456"),
    ],
)
def test_date_range(text: str, lo: str, hi: str) -> None:
    assert date_range(text) == (lo, hi)


@pytest.mark.parametrize(
    "text",
    ["2026-13", "2026-02-30", "20260101", "2026-03-05T25:00", "26", "2026-3", "2026-03-05T10", ""],
)
def test_malformed_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        date_range(text)


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [("100", 99.5, 100.5), ("1.5", 1.45, 1.55), ("0", -0.5, 0.5), ("1e2", 50.0, 150.0)],
)
def test_number_range_follows_significant_digits(text: str, lo: float, hi: float) -> None:
    assert number_range(text) == pytest.approx((lo, hi))


@pytest.mark.parametrize("text", ["abc", "1..2", "NaN", "Infinity", ""])
def test_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        number_range(text)


def test_escaped_separators_do_not_split() -> None:
    parts = split_escaped(r"a\,b,c\|d|e", ",")
    assert parts == [r"a\,b", r"c\|d|e"]
    assert [unescape(p) for p in parts] == ["a,b", "c|d|e"]
    assert split_escaped(r"sys\|x|code", "|") == [r"sys\|x", "code"]
