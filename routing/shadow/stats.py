"""Small, dependency-free statistics for the shadow report.

- ``wilson``: 95% Wilson score interval for a proportion (good at small n and near 0 or 1).
- ``mean_ci``: mean with a Student's t interval, or a seeded percentile bootstrap.
- ``non_inferiority``: one-sided test that a judge score (win=1, tie=0.5, loss=0) exceeds 0.5 - margin.
- ``percentile``: linear interpolation between order statistics (numpy's default, "type 7").
- ``ratio_ci``: paired ratios summarised on the log scale (geometric mean with a t interval).
- ``pairs_needed_*``: how many observations, at the current estimate, would make an interval clear a bound.

The t quantile is computed from the regularized incomplete beta function (continued fraction, as in Numerical
Recipes) and bisection, accurate to ~1e-10.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Final

Z95 = NormalDist().inv_cdf(0.975)
"""Two-sided 95% normal quantile (1.959963...)."""


class Interval:
    """An estimate with its 95% interval, from ``n`` observations."""

    __slots__ = ("estimate", "low", "high", "n")

    estimate: Final[float]
    low: Final[float]
    high: Final[float]
    n: Final[int]

    def __init__(self, estimate: float, low: float, high: float, n: int) -> None:
        self.estimate = estimate
        self.low = low
        self.high = high
        self.n = n

    def as_dict(self) -> dict[str, float | int | list[float]]:
        return {"estimate": self.estimate, "ci95": [self.low, self.high], "n": self.n}


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    if n <= 0:
        return Interval(math.nan, 0.0, 1.0, 0)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, n)


# -- Student's t -------------------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    bt = math.exp(lbt)
    if x < (a + 1) / (a + b + 2):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def mean_sd(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = math.fsum(xs) / n
    if n < 2:
        return m, math.nan
    var = math.fsum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(var)


def mean_ci(xs: Sequence[float], method: str = "t", seed: int = 0, resamples: int = 2000) -> Interval:
    """Mean with a 95% interval (``t``; or ``bootstrap``: percentile bootstrap, seeded, deterministic)."""
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    m, sd = mean_sd(xs)
    if n < 2:
        return Interval(m, -math.inf, math.inf, n)
    if method == "bootstrap":
        rng = random.Random(seed)
        means = sorted(math.fsum(rng.choices(xs, k=n)) / n for _ in range(resamples))
        return Interval(m, percentile(means, 2.5), percentile(means, 97.5), n)
    if sd == 0:
        return Interval(m, m, m, n)
    half = t_ppf(0.975, n - 1) * sd / math.sqrt(n)
    return Interval(m, m - half, m + half, n)


class NonInferiority:
    """The judge-score non-inferiority test of a candidate (``non_inferiority``)."""

    __slots__ = ("win", "tie", "loss", "score", "margin", "bound", "t", "p_value", "non_inferior")

    win: Final[int]
    tie: Final[int]
    loss: Final[int]
    score: Final[Interval]
    """Mean judge score (win=1, tie=0.5, loss=0) with a 95% t interval."""
    margin: Final[float]
    bound: Final[float]
    """0.5 - margin: the score below which the candidate is inferior."""
    t: Final[float]
    p_value: Final[float]
    """One-sided p of H0 "score <= bound"; non-inferior when p < 0.025 (equivalently the 95% CI's lower end
    lies above the bound). NaN (and not non-inferior) when every pair scored alike: zero variance is no
    evidence."""
    non_inferior: Final[bool]

    def __init__(
        self,
        win: int,
        tie: int,
        loss: int,
        score: Interval,
        margin: float,
        bound: float,
        t: float,
        p_value: float,
        non_inferior: bool,
    ) -> None:
        self.win = win
        self.tie = tie
        self.loss = loss
        self.score = score
        self.margin = margin
        self.bound = bound
        self.t = t
        self.p_value = p_value
        self.non_inferior = non_inferior

    def as_dict(self) -> dict[str, object]:
        return {
            "win": self.win,
            "tie": self.tie,
            "loss": self.loss,
            "n": self.score.n,
            "score": self.score.estimate,
            "ci95": [self.score.low, self.score.high],
            "margin": self.margin,
            "bound": self.bound,
            "t": self.t,
            "p_value": self.p_value,
            "non_inferior": self.non_inferior,
        }


def non_inferiority(win: int, tie: int, loss: int, margin: float) -> NonInferiority:
    xs = [1.0] * win + [0.5] * tie + [0.0] * loss
    iv = mean_ci(xs)
    bound = 0.5 - margin
    n = len(xs)
    if n < 2:
        return NonInferiority(win, tie, loss, iv, margin, bound, math.nan, math.nan, False)
    _, sd = mean_sd(xs)
    if sd == 0:  # every pair scored alike: a t statistic would call that certainty; it is no evidence
        t, p = math.nan, math.nan
    else:
        t = (iv.estimate - bound) / (sd / math.sqrt(n))
        p = 1.0 - t_cdf(t, n - 1)
    return NonInferiority(win, tie, loss, iv, margin, bound, t, p, p < 0.025)


def percentile(sorted_xs: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted data, linear interpolation (numpy default)."""
    n = len(sorted_xs)
    if n == 0:
        return math.nan
    if n == 1:
        return float(sorted_xs[0])
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * frac)


def percentiles(xs: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    s = sorted(xs)
    return {f"p{q:g}": percentile(s, q) for q in qs}


def ratio_ci(primary: Sequence[float], candidate: Sequence[float]) -> dict[str, float | int | list[float]]:
    """Paired ratios candidate/primary: median, geometric mean with a 95% t interval (on log ratios)."""
    logs = [math.log(c / p) for p, c in zip(primary, candidate, strict=True) if p > 0 and c > 0]
    if not logs:
        return {"n": 0, "median": math.nan, "geomean": math.nan, "ci95": [math.nan, math.nan]}
    iv = mean_ci(logs)
    med = math.exp(percentile(sorted(logs), 50))
    return {
        "n": len(logs),
        "median": med,
        "geomean": math.exp(iv.estimate),
        "ci95": [_exp(iv.low), _exp(iv.high)],
    }


def _exp(x: float) -> float:
    if math.isnan(x):
        return math.nan
    if x == math.inf:
        return math.inf
    if x == -math.inf:
        return 0.0
    return math.exp(x)


# -- how many more observations --------------------------------------------------------------------------
_CAP = 1_000_000


def _search(f: Callable[[int], bool], n0: int) -> int | None:
    """Smallest n >= n0 with ``f(n)`` true (monotone), by doubling then bisection; None beyond the cap."""
    if f(n0):
        return n0
    lo, hi = n0, max(2 * n0, n0 + 10)
    while not f(hi):
        lo, hi = hi, hi * 2
        if hi > _CAP:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid):
            hi = mid
        else:
            lo = mid
    return hi


def n_for_proportion(p: float, n: int, bound: float, above: bool) -> int | None:
    """Observations needed (at rate ``p``) for the Wilson interval to lie wholly above/below ``bound``."""
    if above and p <= bound or not above and p >= bound:
        return None

    def clears(m: int) -> bool:
        iv = wilson(round(p * m), m)
        return iv.low > bound if above else iv.high < bound

    return _search(clears, max(n, 2))


def n_for_mean(mean: float, sd: float, n: int, bound: float, above: bool) -> int | None:
    """Observations needed (at this mean and sd) for the t interval to lie wholly above/below ``bound``."""
    gap = mean - bound if above else bound - mean
    if gap <= 0:
        return None
    if not sd or math.isnan(sd):
        return max(n, 2)

    def clears(m: int) -> bool:
        return t_ppf(0.975, m - 1) * sd / math.sqrt(m) < gap

    return _search(clears, max(n, 2))
