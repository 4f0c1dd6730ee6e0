"""Paired comparisons of the candidate with the primary on the same requests."""

from __future__ import annotations

import pytest

from routing.shadow.paired import PairedCounts, newcombe_paired, paired_mean


def test_newcombe_paired_interval_matches_the_published_value() -> None:
    # Fagerland, Lydersen & Laake (2017), ch. 8, Cavo et al. (2012): 59, 6 / 16, 80 -> -0.0621 (-0.1186 to -0.0046)
    # for row rate minus column rate; here the candidate is the column: the same interval mirrored
    iv = newcombe_paired(PairedCounts(both=59, primary_only=6, candidate_only=16, neither=80))
    assert (round(iv.estimate, 4), round(iv.low, 4), round(iv.high, 4)) == (0.0621, 0.0046, 0.1186)


def test_swapping_the_sides_mirrors_the_interval() -> None:
    a = newcombe_paired(PairedCounts(30, 4, 9, 7))
    b = newcombe_paired(PairedCounts(30, 9, 4, 7))
    assert (a.estimate, a.low, a.high) == pytest.approx((-b.estimate, -b.high, -b.low))


def test_identical_sides_give_an_interval_around_zero() -> None:
    iv = newcombe_paired(PairedCounts(90, 0, 0, 10))
    assert iv.estimate == 0.0 and iv.low < 0.0 < iv.high


def test_counts_come_from_primary_and_candidate_scores() -> None:
    t = PairedCounts.of([(1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 1.0), (0.0, 0.0)])
    assert t.as_dict() == {"both": 1, "primary_only": 1, "candidate_only": 2, "neither": 1}


def test_paired_mean_is_the_mean_of_differences() -> None:
    iv = paired_mean([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.0, 5.0])
    assert iv.estimate == pytest.approx(0.5)
    assert iv.low < 0.5 < iv.high
