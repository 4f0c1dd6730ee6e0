"""Anytime-valid inference: tests and confidence bounds that stay valid however often the data are looked at.

A fixed-horizon 95% interval is right 95% of the time *at one pre-planned sample size*. A dashboard recomputes it
after every pair and a team acts at the first "ready", so the chance that it is ever wrong along the way is far
above 5%. The tools here are valid *uniformly over time*: the probability that they are ever wrong, at any of
infinitely many looks, is at most ``alpha``.

- ``BettingTest``: a one-sided test of a bounded mean by betting (Waudby-Smith & Ramdas, "Estimating means of
  bounded random variables by betting", JRSS-B 2023). Wealth ``K_t = prod(1 + lambda_i (y_i - m))`` with a
  predictable bet ``lambda_i >= 0`` (the aGRAPA rule: the Kelly bet at the running mean and variance, capped) is
  a non-negative supermartingale whenever the conditional mean of ``y`` is at most ``m``, so by Ville's
  inequality ``P(sup_t K_t >= 1/alpha) <= alpha``: "reject when the wealth reaches ``1/alpha``" may be checked after
  every observation, forever. It never needs a variance estimate to be valid: a constant sample is treated like
  any other (its wealth grows only as fast as its distance from ``m`` allows), unlike a t statistic, which turns
  zero variance into p = 0.
- ``lower_bound`` / ``upper_bound``: the anytime-valid confidence bound that inverts ``BettingTest`` (the set of
  ``m`` it has not rejected), found by bisection.
- ``pairs_needed``: how many more observations the test likely needs, from the growth rate of the best constant
  bet on the data so far.
- ``QuantileBounds``: a time-uniform confidence sequence for a quantile (e.g. a p95 latency) from order
  statistics and a beta-binomial mixture martingale (Howard & Ramdas, "Sequential estimation of quantiles with
  applications to A/B-testing and best-arm identification", Bernoulli 2022).

Nothing here is specific to shadow tests; ``routing/shadow/verdict.py`` builds the verdict from them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

CAP = 0.75
"""Largest fraction of the wealth a single bet may risk (Waudby-Smith & Ramdas use 1/2 or 3/4): bounds the loss
from one adverse observation while the running estimates are still poor."""
_MAX_NEEDED = 10_000_000


class BettingTest:
    """One-sided anytime-valid test about the mean of observations bounded in ``[lo, hi]``.

    ``above=True``: H0 "mean <= m0", rejected once the candidate has shown its mean is above ``m0``.
    ``above=False``: H0 "mean >= m0", rejected once the mean is shown below ``m0``.

    Observations are rescaled to [0, 1] (and mirrored for ``above=False``) so one rule serves both directions. The
    bet is predictable (it uses only earlier observations) and non-negative, so under H0 the wealth is a
    supermartingale even when the data drift, as long as each observation's conditional mean obeys H0.
    """

    __slots__ = ("_cap", "_m", "_s", "_ss", "above", "hi", "lo", "log_wealth", "m0", "n")

    def __init__(
        self, m0: float, lo: float = 0.0, hi: float = 1.0, above: bool = True, cap: float = CAP
    ) -> None:
        if not hi > lo:
            raise ValueError("need lo < hi")
        if not 0 < cap < 1:
            raise ValueError("cap must be in (0, 1)")
        self.m0, self.lo, self.hi, self.above = m0, lo, hi, above
        m = (m0 - lo) / (hi - lo)
        self._m = m if above else 1.0 - m
        self._cap = cap
        self.n = 0
        self._s = 0.0
        self._ss = 0.0
        self.log_wealth = 0.0

    def update(self, x: float) -> None:
        y = (x - self.lo) / (self.hi - self.lo)
        if not self.above:
            y = 1.0 - y
        y = 0.0 if y < 0.0 else 1.0 if y > 1.0 else y
        m = self._m
        n1 = self.n + 1
        mu = (0.5 + self._s) / n1  # running mean and variance with one pseudo-observation (mean 1/2, var 1/4)
        if m < 1.0:
            d = mu - m
            if d > 0.0:
                lam = d / ((0.25 + self._ss) / n1 + d * d)
                limit = self._cap / m if m > 0.0 else 1e9
                lam = lam if lam < limit else limit
                self.log_wealth += math.log1p(lam * (y - m))
        # m >= 1: H0 "mean <= 1" holds for every bounded sample; no bet can win, the test never rejects.
        e = y - mu
        self._ss += e * e
        self._s += y
        self.n = n1

    def extend(self, xs: Iterable[float]) -> BettingTest:
        for x in xs:
            self.update(x)
        return self

    @property
    def mean(self) -> float:
        """The sample mean, in the observations' own units (NaN before any)."""
        if self.n == 0:
            return math.nan
        y = self._s / self.n
        return self.lo + (y if self.above else 1.0 - y) * (self.hi - self.lo)

    @property
    def e_value(self) -> float:
        return math.exp(min(self.log_wealth, 700.0))

    def rejects(self, alpha: float) -> bool:
        """Whether H0 is rejected now (valid at level ``alpha`` however many times this is asked)."""
        return self.log_wealth >= -math.log(alpha)


def betting(xs: Sequence[float], m0: float, lo: float, hi: float, above: bool) -> BettingTest:
    return BettingTest(m0, lo, hi, above).extend(xs)


def lower_bound(
    xs: Sequence[float], alpha: float, lo: float = 0.0, hi: float = 1.0, tol: float = 1e-4
) -> float:
    """Anytime-valid lower confidence bound for the mean: the largest ``m`` that ``BettingTest(m, above=True)``
    rejects at ``alpha`` (``lo`` when none)."""
    return _invert(xs, alpha, lo, hi, True, tol)


def upper_bound(
    xs: Sequence[float], alpha: float, lo: float = 0.0, hi: float = 1.0, tol: float = 1e-4
) -> float:
    """Anytime-valid upper confidence bound for the mean (``hi`` when no ``m`` below it is rejected)."""
    return _invert(xs, alpha, lo, hi, False, tol)


def _invert(xs: Sequence[float], alpha: float, lo: float, hi: float, above: bool, tol: float) -> float:
    if not xs:
        return lo if above else hi
    mean = math.fsum(xs) / len(xs)
    # above: rejected m lie in [lo, mean); the bound is the edge of that set (bisection assumes it is an interval).
    inside, outside = (mean, lo) if above else (mean, hi)
    if not betting(xs, outside, lo, hi, above).rejects(alpha):
        return outside
    while abs(inside - outside) > tol * (hi - lo):
        mid = (inside + outside) / 2
        if betting(xs, mid, lo, hi, above).rejects(alpha):
            outside = mid
        else:
            inside = mid
    return outside


def growth_rate(
    xs: Sequence[float], m0: float, lo: float = 0.0, hi: float = 1.0, above: bool = True, cap: float = CAP
) -> float:
    """Mean log-growth per observation of the best constant bet on ``xs`` (0 when the data do not favour H1)."""
    m = (m0 - lo) / (hi - lo)
    ys = [(x - lo) / (hi - lo) for x in xs]
    if not above:
        m, ys = 1.0 - m, [1.0 - y for y in ys]
    if not ys or m >= 1.0 or math.fsum(ys) / len(ys) <= m:
        return 0.0
    limit = cap / m if m > 0 else 1e9

    def g(lam: float) -> float:
        return math.fsum(math.log1p(lam * (y - m)) for y in ys) / len(ys)

    a, b = 0.0, limit  # g is concave in lambda: golden-section search for its maximum
    r = (math.sqrt(5) - 1) / 2
    c, d = b - r * (b - a), a + r * (b - a)
    gc, gd = g(c), g(d)
    for _ in range(60):
        if gc < gd:
            a, c, gc = c, d, gd
            d = a + r * (b - a)
            gd = g(d)
        else:
            b, d, gd = d, c, gc
            c = b - r * (b - a)
            gc = g(c)
    return max(0.0, gc, gd, g(limit))


def pairs_needed(test: BettingTest, xs: Sequence[float], alpha: float) -> int | None:
    """More observations the test likely needs to reject, if the data go on as they did; None when they point
    the other way (or would need more than ten million)."""
    if test.rejects(alpha):
        return 0
    g = growth_rate(xs, test.m0, test.lo, test.hi, test.above)
    if g <= 0:
        return None
    need = math.ceil((-math.log(alpha) - test.log_wealth) / g)
    return max(1, need) if need <= _MAX_NEEDED else None


# -- quantiles ----------------------------------------------------------------------------------------------
def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


class QuantileBounds:
    """Time-uniform confidence sequence for the ``q`` quantile.

    At the true quantile ``x*`` the count ``N_t = #{X_i <= x*}`` is Binomial(t, q) (at least that, for discrete
    data), so the beta-binomial mixture of likelihood ratios against ``q`` is a non-negative martingale and, by
    Ville, ``N_t`` stays for all t, with probability ``1 - alpha``, inside the counts whose mixture is below
    ``1/alpha``. Inside that band the order statistics bracket ``x*``.
    """

    __slots__ = ("q", "alpha", "prior")

    q: Final[float]
    alpha: Final[float]
    prior: Final[float]
    """Beta prior strength (its mean is ``q``): where the band is tightest, roughly t of a few times this."""

    def __init__(self, q: float, alpha: float, prior: float = 20.0) -> None:
        self.q = q
        self.alpha = alpha
        self.prior = prior

    def _log_mix(self, k: int, t: int) -> float:
        a, b, q = self.q * self.prior, (1 - self.q) * self.prior, self.q
        return _lbeta(a + k, b + t - k) - _lbeta(a, b) - k * math.log(q) - (t - k) * math.log1p(-q)

    def count_band(self, t: int) -> tuple[int, int]:
        """The smallest and largest ``N_t`` the confidence sequence allows at time ``t``."""
        limit = -math.log(self.alpha)
        mid = min(t, max(0, round(t * self.q)))
        lo_k, hi_k = 0, t
        if self._log_mix(0, t) >= limit:  # bisect on the convex log-mixture, left of its minimum
            a, b = 0, mid
            while b - a > 1:
                c = (a + b) // 2
                a, b = (c, b) if self._log_mix(c, t) >= limit else (a, c)
            lo_k = b
        if self._log_mix(t, t) >= limit:
            a, b = mid, t
            while b - a > 1:
                c = (a + b) // 2
                a, b = (a, c) if self._log_mix(c, t) >= limit else (c, b)
            hi_k = a
        return lo_k, hi_k

    def bounds(self, sorted_xs: Sequence[float]) -> tuple[float, float]:
        """(lower, upper) bound for the quantile from sorted data; -inf / inf where the data cannot bound it yet."""
        t = len(sorted_xs)
        if t == 0:
            return -math.inf, math.inf
        lo_k, hi_k = self.count_band(t)
        lower = sorted_xs[lo_k - 1] if lo_k >= 1 else -math.inf
        upper = sorted_xs[hi_k] if hi_k + 1 <= t else math.inf
        return lower, upper
