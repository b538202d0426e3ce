"""Small-number suppression of report figures (pure).

The rules, applied to every output (FHIR, CLI, pages):

- a count from 1 to 10 is not shown (`<11`); 0 is shown;
- a rate or median is not shown when a count it rests on is 1 to 10, or is
  itself hidden;
- counts below clinic level (strata, and every figure of a report narrowed
  to one practitioner, service or location) are rounded to the nearest 5;
- complementary suppression: within a stratifier, when exactly one stratum
  of a population is hidden while the total is shown, the smallest other
  non-zero stratum is hidden too, so the hidden one cannot be worked out as
  total minus the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

SMALLEST_SHOWN: Final = 11
ROUND_TO: Final = 5


@dataclass(frozen=True)
class Count:
    """A population count as shown: `value` None when hidden; `rounded` when rounded to 5."""

    code: str
    exact: int
    value: int | None
    rounded: bool = False

    @property
    def hidden(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Figures:
    """One group's or stratum's numbers before suppression: the population counts, a score,
    and the counts the score rests on (the populations, or a hidden one such as a median's
    number of appointments)."""

    counts: dict[str, int]
    score: float | None = None
    basis: tuple[int, ...] = ()


@dataclass(frozen=True)
class Shown:
    counts: list[Count] = field(default_factory=list)
    score: float | None = None
    score_hidden: bool = False


def small(n: int) -> bool:
    return 1 <= n < SMALLEST_SHOWN


def rounded(n: int) -> int:
    return int(ROUND_TO * ((n + ROUND_TO // 2) // ROUND_TO))


def count(code: str, n: int, *, round_it: bool) -> Count:
    if small(n):
        return Count(code, n, None)
    if round_it and n:
        return Count(code, n, rounded(n), rounded=True)
    return Count(code, n, n)


def shown(figures: Figures, *, round_it: bool) -> Shown:
    counts = [count(code, n, round_it=round_it) for code, n in figures.counts.items()]
    return with_score(Shown(counts), figures)


def with_score(view: Shown, figures: Figures) -> Shown:
    """The score, unless a count it rests on is small or hidden."""
    if figures.score is None:
        return replace(view, score=None, score_hidden=False)
    hidden = any(small(n) for n in figures.basis) or any(c.hidden for c in view.counts)
    return replace(view, score=None if hidden else figures.score, score_hidden=hidden)


def complementary(total: Shown, strata: list[Shown]) -> list[Shown]:
    """The strata with one more cell hidden per population where exactly one is hidden and
    the total is shown."""
    out = [replace(s, counts=list(s.counts)) for s in strata]
    for position, total_count in enumerate(total.counts):
        if total_count.hidden:
            continue
        cells = [(i, s.counts[position]) for i, s in enumerate(out) if position < len(s.counts)]
        if sum(1 for _, c in cells if c.hidden) != 1:
            continue
        candidates = [(c.exact, i) for i, c in cells if not c.hidden and c.exact > 0]
        if not candidates:
            continue
        _, chosen = min(candidates)
        counts = out[chosen].counts
        counts[position] = replace(counts[position], value=None, rounded=False)
    return out


def hide_scores(strata: list[Shown], figures: list[Figures]) -> list[Shown]:
    """Scores re-checked after complementary suppression hid more counts."""
    return [with_score(s, f) for s, f in zip(strata, figures, strict=True)]
