"""Paired comparisons: the candidate against the primary on the same requests.

Comparing two rates measured on the same requests as if they were independent samples wastes the pairing: most
requests are easy for both, and the difference lives in the few where they disagree. These statistics use it.

- ``PairedCounts`` / ``newcombe_paired``: the difference of two paired proportions (candidate pass rate minus
  primary pass rate) with Newcombe's (1998) square-and-add interval built from the two Wilson intervals and the
  phi correlation of the 2x2 table ("method 10"; Fagerland, Lydersen & Laake, *Statistical Analysis of
  Contingency Tables*, ch. 8, recommend it). A fixed-horizon ("snapshot") interval.
- ``paired_mean``: the mean of per-request differences with a t (or bootstrap) interval (latency, cost, scores).
- ``differences``: per-request differences, in time order, for the anytime-valid tests of ``sequential``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from routing.shadow.stats import Z95, Interval, mean_ci, wilson


class PairedCounts:
    """A paired 2x2 table: each request scored pass/fail on both sides."""

    __slots__ = ("both", "primary_only", "candidate_only", "neither")

    both: Final[int]
    primary_only: Final[int]
    """The primary passed and the candidate failed."""
    candidate_only: Final[int]
    """The candidate passed and the primary failed."""
    neither: Final[int]

    def __init__(self, both: int, primary_only: int, candidate_only: int, neither: int) -> None:
        self.both = both
        self.primary_only = primary_only
        self.candidate_only = candidate_only
        self.neither = neither

    @property
    def n(self) -> int:
        return self.both + self.primary_only + self.candidate_only + self.neither

    @classmethod
    def of(cls, pairs: Sequence[tuple[float, float]]) -> PairedCounts:
        """From (primary, candidate) scores; a score of 0.5 or more passes."""
        both = p_only = c_only = neither = 0
        for p, c in pairs:
            pp, cc = p >= 0.5, c >= 0.5
            if pp and cc:
                both += 1
            elif pp:
                p_only += 1
            elif cc:
                c_only += 1
            else:
                neither += 1
        return cls(both, p_only, c_only, neither)

    def as_dict(self) -> dict[str, int]:
        return {
            "both": self.both,
            "primary_only": self.primary_only,
            "candidate_only": self.candidate_only,
            "neither": self.neither,
        }


def newcombe_paired(t: PairedCounts, z: float = Z95) -> Interval:
    """Candidate rate minus primary rate with Newcombe's square-and-add interval for paired proportions."""
    n = t.n
    if n == 0:
        return Interval(math.nan, -1.0, 1.0, 0)
    x1, x2 = t.both + t.primary_only, t.both + t.candidate_only  # primary passes, candidate passes
    p1, p2 = x1 / n, x2 / n
    w1, w2 = wilson(x1, n, z), wilson(x2, n, z)
    l1, u1, l2, u2 = w1.low, w1.high, w2.low, w2.high
    # phi of the 2x2 table, with Newcombe's continuity correction towards 0 for positive association
    margins = x1 * (n - x1) * x2 * (n - x2)
    if margins == 0:
        phi = 0.0
    else:
        a = t.both * t.neither - t.primary_only * t.candidate_only
        if a > n / 2:
            phi = (a - n / 2) / math.sqrt(margins)
        elif a >= 0:
            phi = 0.0
        else:
            phi = a / math.sqrt(margins)
    d = p2 - p1
    low = d - math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    high = d + math.sqrt(max(0.0, (u2 - p2) ** 2 + (p1 - l1) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1)))
    return Interval(d, max(-1.0, low), min(1.0, high), n)


def differences(primary: Sequence[float], candidate: Sequence[float]) -> list[float]:
    """Per-request candidate minus primary."""
    return [c - p for p, c in zip(primary, candidate, strict=True)]


def paired_mean(primary: Sequence[float], candidate: Sequence[float], method: str = "t") -> Interval:
    """Mean of candidate minus primary over the same requests, with a 95% t (or bootstrap) interval."""
    return mean_ci(differences(primary, candidate), method)
