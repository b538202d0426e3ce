"""Small-number suppression of report figures (pure): hidden 1-10, rounding to 5 below
clinic level, scores resting on hidden counts, complementary suppression."""

from __future__ import annotations

import pytest

from fhir_server.reporting.suppression import (
    Figures,
    complementary,
    count,
    hide_scores,
    rounded,
    shown,
)


@pytest.mark.parametrize(("n", "value"), [(0, 0), (1, None), (10, None), (11, 11), (250, 250)])
def test_counts_from_1_to_10_are_hidden_0_is_shown(n: int, value: int | None) -> None:
    assert count("numerator", n, round_it=False).value == value


@pytest.mark.parametrize(("n", "value"), [(0, 0), (11, 10), (12, 10), (13, 15), (17, 15), (35, 35)])
def test_below_clinic_level_counts_round_to_5(n: int, value: int) -> None:
    shown_count = count("numerator", n, round_it=True)
    assert shown_count.value == value == rounded(n) and shown_count.rounded == (n > 0)


def test_a_score_is_hidden_when_a_count_it_rests_on_is_small() -> None:
    rate = Figures({"denominator": 40, "numerator": 5}, 5 / 40, (5, 40))
    view = shown(rate, round_it=False)
    assert view.score is None and view.score_hidden
    assert (
        shown(Figures({"denominator": 40, "numerator": 12}, 0.3, (12, 40)), round_it=False).score
        == 0.3
    )
    median = Figures({}, 2.0, (7,))  # a median over 7 appointments
    assert shown(median, round_it=False).score_hidden
    assert shown(Figures({}, 2.0, (70,)), round_it=False).score == 2.0


def test_complementary_suppression_hides_the_smallest_other_cell() -> None:
    strata = [
        Figures({"numerator": 2, "denominator": 30}, 2 / 30, (2, 30)),
        Figures({"numerator": 14, "denominator": 40}, 14 / 40, (14, 40)),
        Figures({"numerator": 12, "denominator": 25}, 12 / 25, (12, 25)),
        Figures({"numerator": 0, "denominator": 5}, 0.0, (0, 5)),
    ]
    total = shown(Figures({"numerator": 28, "denominator": 100}, 0.28, (28, 100)), round_it=False)
    views = hide_scores(complementary(total, [shown(f, round_it=True) for f in strata]), strata)
    numerators = [v.counts[0].value for v in views]
    # 2 is hidden; 28 - 14 - 12 - 0 would give it away: the smallest other non-zero (12) goes too.
    assert numerators == [None, 15, None, 0]
    assert [v.score is None for v in views] == [True, False, True, True]
    # The denominator 5 is hidden; the smallest other non-zero (25) goes too.
    assert [v.counts[1].value for v in views] == [30, 40, None, None]


def test_no_complement_when_the_total_is_hidden_or_two_cells_are() -> None:
    strata = [Figures({"n": 3}), Figures({"n": 4}), Figures({"n": 30})]
    total = shown(Figures({"n": 37}), round_it=False)
    views = complementary(total, [shown(f, round_it=True) for f in strata])
    assert [v.counts[0].value for v in views] == [None, None, 30]
    hidden_total = shown(Figures({"n": 7}), round_it=False)
    views = complementary(
        hidden_total,
        [shown(Figures({"n": 7}), round_it=True), shown(Figures({"n": 0}), round_it=True)],
    )
    assert [v.counts[0].value for v in views] == [None, 0]
