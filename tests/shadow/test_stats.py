"""The statistics behind the report, against published values and against their own definitions."""

from __future__ import annotations

import pytest

from routing.shadow.config import PromoteWhen, ShadowConfig
from routing.shadow.record import PairRecord, Side
from routing.shadow.report import summarize
from routing.shadow.stats import (
    mean_ci,
    n_for_proportion,
    non_inferiority,
    percentile,
    ratio_ci,
    t_ppf,
    wilson,
)


def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775
    iv = wilson(81, 263)
    assert (round(iv.low, 4), round(iv.high, 4)) == (0.2553, 0.3662)
    iv0 = wilson(0, 10)
    assert (iv0.low, round(iv0.high, 4)) == (0.0, 0.2775)


@pytest.mark.parametrize(("df", "q"), [(1, 12.7062), (5, 2.5706), (30, 2.0423), (1000, 1.9623)])
def test_t_quantiles_match_tables(df: int, q: float) -> None:
    assert t_ppf(0.975, df) == pytest.approx(q, abs=1e-4)


def test_mean_interval_is_mean_plus_minus_t_times_standard_error() -> None:
    xs = [0.2, 0.4, 0.6, 0.8, 1.0]
    iv = mean_ci(xs)
    half = 2.7764451051977987 * (0.1**0.5) / 5**0.5  # t(0.975, 4) * sd / sqrt(n), sd^2 = 0.1
    assert (iv.low, iv.high) == pytest.approx((0.6 - half, 0.6 + half))


def test_bootstrap_interval_is_seeded_and_brackets_the_mean() -> None:
    xs = [float(i % 7) for i in range(200)]
    a, b = mean_ci(xs, "bootstrap"), mean_ci(xs, "bootstrap")
    assert (a.low, a.high) == (b.low, b.high)
    assert a.low < a.estimate < a.high


def test_non_inferiority_holds_for_a_clearly_equal_candidate() -> None:
    r = non_inferiority(win=40, tie=120, loss=40, margin=0.1)
    assert r.score.estimate == 0.5
    assert r.non_inferior and r.p_value < 0.025 and r.score.low > r.bound


def test_non_inferiority_fails_for_a_worse_candidate() -> None:
    r = non_inferiority(win=10, tie=40, loss=50, margin=0.05)
    assert r.score.estimate == pytest.approx(0.3)
    assert not r.non_inferior and r.p_value > 0.5


def test_percentile_interpolates_like_numpy() -> None:
    xs = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert [percentile(xs, q) for q in (0, 50, 95, 99, 100)] == pytest.approx([1.0, 3.0, 8.8, 9.76, 10.0])


def test_paired_ratio_of_a_side_twice_as_fast_is_one_half() -> None:
    r = ratio_ci([0.2, 0.4, 0.8], [0.1, 0.2, 0.4])
    assert (r["median"], r["geomean"]) == pytest.approx((0.5, 0.5))


def test_pairs_needed_is_where_the_interval_first_clears_the_bound() -> None:
    n = n_for_proportion(0.9, 20, 0.8, above=True)
    assert n is not None
    assert wilson(round(0.9 * n), n).low > 0.8
    assert wilson(round(0.9 * (n - 1)), n - 1).low <= 0.8


def _pairs(n: int, passing: int) -> list[PairRecord]:
    out = []
    for i in range(n):
        p = PairRecord(
            id=f"r{i}",
            ts=1000.0 + i,
            route="r",
            task=None,
            team=None,
            key="k",
            endpoint="chat/completions",
            stream=False,
            primary=Side(ok=True, latency_s=0.1),
            candidate=Side(ok=True, latency_s=0.05),
        )
        p.scores["json_valid"] = 1.0 if i < passing else 0.0
        out.append(p)
    return out


def test_undecided_criterion_asks_for_more_pairs_and_that_many_decide_it() -> None:
    shadow = ShadowConfig.model_validate({"model": "c", "compare": ["json_valid"]})
    pw = PromoteWhen.model_validate(
        {
            "min_pairs": 10,
            "scores": {"json_valid": {"min": 0.8}},
            "max_candidate_error_rate": None,
            "decide_on": "ci",
        }
    )
    first = summarize(_pairs(20, 18), [], shadow, pw, now=2000.0)["verdict"]
    assert first["verdict"] == "insufficient_data" and first["pairs_needed"] > 0
    total = 20 + first["pairs_needed"]
    again = summarize(_pairs(total, round(0.9 * total)), [], shadow, pw, now=2000.0)["verdict"]
    assert again["verdict"] == "ready"
