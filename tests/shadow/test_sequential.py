"""Anytime-valid tests and bounds: valid under continuous peeking, never fooled by zero variance, and as tight as
their definitions say."""

from __future__ import annotations

import math
import random

import pytest

from routing.shadow.sequential import (
    BettingTest,
    QuantileBounds,
    betting,
    growth_rate,
    lower_bound,
    pairs_needed,
    upper_bound,
)

ALPHA = 0.05


def ever_rejects(p: float, m0: float, n: int, seed: int, above: bool = True) -> bool:
    rng = random.Random(seed)
    t = BettingTest(m0, above=above)
    for _ in range(n):
        t.update(1.0 if rng.random() < p else 0.0)
        if t.rejects(ALPHA):
            return True
    return False


def mc_limit(runs: int) -> float:
    """alpha plus three Monte-Carlo standard errors."""
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_a_mean_at_the_bound_is_rarely_ever_rejected_even_when_checked_after_every_observation() -> None:
    runs = 300
    rate = sum(ever_rejects(0.8, 0.8, 1000, seed) for seed in range(runs)) / runs
    assert rate <= mc_limit(runs)


def test_the_below_direction_is_valid_too() -> None:
    runs = 300
    rate = sum(ever_rejects(0.05, 0.05, 1000, seed, above=False) for seed in range(runs)) / runs
    assert rate <= mc_limit(runs)


def test_a_mean_clearly_above_the_bound_is_shown_above_it() -> None:
    assert sum(ever_rejects(0.9, 0.8, 1000, seed) for seed in range(50)) >= 48


def test_two_identical_observations_are_not_evidence() -> None:
    # a t test turns zero variance into p = 0; a bet on two ties wins little
    t = BettingTest(0.45).extend([0.5, 0.5])
    assert not t.rejects(ALPHA)
    assert t.e_value < 1.2


def test_a_constant_sample_exactly_at_the_bound_is_never_evidence() -> None:
    t = BettingTest(0.5).extend([0.5] * 100_000)
    assert t.log_wealth == 0.0


def test_no_sample_can_show_a_bounded_mean_above_its_upper_end() -> None:
    assert not BettingTest(1.0).extend([1.0] * 10_000).rejects(ALPHA)


def test_a_constant_sample_inside_the_range_counts_only_as_fast_as_its_distance_allows() -> None:
    # all ties (0.5) against a bound of 0.45: at most log(1 + cap * 0.05 / 0.45) per observation
    t = BettingTest(0.45)
    n = 0
    while not t.rejects(ALPHA):
        t.update(0.5)
        n += 1
    assert n >= math.log(1 / ALPHA) / math.log1p(0.75 * 0.05 / 0.45)


def test_observations_are_rescaled_from_their_own_range() -> None:
    xs = [1.0, -1.0, 0.0, 1.0, 1.0, 0.0] * 20
    a = betting(xs, -0.2, -1.0, 1.0, True)
    b = betting([(x + 1) / 2 for x in xs], 0.4, 0.0, 1.0, True)
    assert a.log_wealth == pytest.approx(b.log_wealth)
    assert a.mean == pytest.approx(sum(xs) / len(xs))


def test_the_confidence_bounds_invert_the_test() -> None:
    rng = random.Random(7)
    xs = [1.0 if rng.random() < 0.7 else 0.0 for _ in range(400)]
    low, high = lower_bound(xs, ALPHA), upper_bound(xs, ALPHA)
    mean = sum(xs) / len(xs)
    assert low < mean < high
    assert betting(xs, low - 1e-3, 0, 1, True).rejects(ALPHA)
    assert not betting(xs, low + 1e-3, 0, 1, True).rejects(ALPHA)
    assert betting(xs, high + 1e-3, 0, 1, False).rejects(ALPHA)


def test_the_lower_bound_covers_the_mean_at_every_look() -> None:
    runs, misses = 200, 0
    for seed in range(runs):
        rng = random.Random(seed)
        xs: list[float] = []
        for n in range(1, 801):
            xs.append(rng.random())  # uniform: mean 0.5
            if n % 100 == 0 and lower_bound(xs, ALPHA, tol=1e-3) > 0.5:
                misses += 1
                break
    assert misses / runs <= mc_limit(runs)


def test_pairs_needed_predicts_when_the_test_rejects() -> None:
    pattern = [1.0] * 9 + [0.0]  # a 90% pass rate against a bound of 0.8
    xs = pattern * 5
    t = betting(xs, 0.8, 0, 1, True)
    predicted = pairs_needed(t, xs, ALPHA)
    assert predicted is not None and predicted > 0
    more = 0
    while not t.rejects(ALPHA):
        t.update(pattern[more % 10])
        more += 1
    assert 0.5 * predicted <= more <= 2 * predicted


def test_pairs_needed_is_none_when_the_data_point_the_other_way() -> None:
    xs = [1.0] * 7 + [0.0] * 3
    assert growth_rate(xs, 0.8) == 0.0
    assert pairs_needed(betting(xs, 0.8, 0, 1, True), xs, ALPHA) is None


def test_quantile_band_holds_the_true_quantile_count_at_every_time() -> None:
    q, horizon, runs = 0.95, 1500, 300
    qb = QuantileBounds(q, ALPHA)
    bands = [qb.count_band(t) for t in range(1, horizon + 1)]
    escaped = 0
    for seed in range(runs):
        rng = random.Random(seed)
        k = 0
        for t in range(1, horizon + 1):
            k += rng.random() < q
            lo, hi = bands[t - 1]
            if not lo <= k <= hi:
                escaped += 1
                break
    assert escaped / runs <= mc_limit(runs)


def test_quantile_bounds_bracket_the_sample_quantile_and_tighten() -> None:
    qb = QuantileBounds(0.95, ALPHA)
    rng = random.Random(3)
    xs = sorted(rng.expovariate(1.0) for _ in range(5000))
    low, high = qb.bounds(xs)
    true_p95 = -math.log(0.05)
    assert low < true_p95 < high
    assert high - low < 0.6
    few_low, few_high = qb.bounds(xs[::50])
    assert few_high == math.inf or few_high - few_low > high - low
