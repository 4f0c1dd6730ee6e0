"""Judge reliability from the answers an order-swapped judge gave."""

from __future__ import annotations

import pytest

from routing.shadow.judging import (
    INCONSISTENT,
    LOSS,
    TIE,
    WIN,
    JudgeTally,
    answers_of,
    cohen_kappa,
    detail,
    outcome,
    reliability,
)


@pytest.mark.parametrize(
    ("primary_first", "candidate_first", "expected"),
    [
        ("2", "1", WIN),
        ("1", "2", LOSS),
        ("tie", "tie", TIE),
        ("1", "1", INCONSISTENT),
        ("2", "2", INCONSISTENT),
        ("2", "tie", INCONSISTENT),
        ("tie", "2", INCONSISTENT),
    ],
)
def test_outcome_is_the_candidates_view_of_both_orders(
    primary_first: str, candidate_first: str, expected: str
) -> None:
    assert outcome(primary_first, candidate_first) == expected


def test_the_detail_round_trips() -> None:
    assert answers_of(detail("tie", "1")) == ("tie", "1")
    assert answers_of(None) is None and answers_of("something else") is None


def tally(pairs: list[tuple[str, str]], unparsed: int = 0) -> JudgeTally:
    t = JudgeTally()
    for a, b in pairs:
        t.add(a, b)
    for _ in range(unparsed):
        t.add_error("JudgeUnparsed: judge gave no verdict")
    return t


def test_an_always_first_judge_is_inconsistent_fully_position_biased_and_constant() -> None:
    t = tally([("1", "1")] * 20)
    assert (t.consistency, t.position_bias, t.constant) == (0.0, 1.0, "1")
    assert t.outcomes[INCONSISTENT] == 20 and t.outcomes[TIE] == 0
    reasons = reliability(t, 0.6, 0.2)
    assert any(r.startswith("constant judge") for r in reasons)
    assert any(r.startswith("order consistency 0.0%") for r in reasons)


def test_an_always_tie_judge_is_consistent_but_constant() -> None:
    t = tally([("tie", "tie")] * 20)
    assert (t.consistency, t.tie_rate, t.constant) == (1.0, 1.0, "tie")
    assert reliability(t, 0.6, 0.2) == ['constant judge: always answers "tie" over 20 pairs']


def test_an_honest_judge_is_consistent_unbiased_and_reliable() -> None:
    t = tally([("2", "1")] * 6 + [("1", "2")] * 4 + [("tie", "tie")] * 10)
    assert (t.consistency, t.position_bias, t.tie_rate, t.constant) == (1.0, 0.0, 0.5, None)
    assert reliability(t, 0.6, 0.2) == []


def test_parse_failures_count_against_the_judge_separately_from_other_errors() -> None:
    t = tally([("2", "1"), ("1", "2")] * 4, unparsed=2)
    t.add_error("TimeoutError: ")
    assert (t.unparsed, t.failed) == (2, 1)
    assert t.parse_failure_rate == pytest.approx(0.2)
    assert reliability(t, 0.6, 0.1) == ["parse failures 20.0% above 10%"]


def test_cohen_kappa_matches_the_textbook_example() -> None:
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o = 0.7, p_e = 0.5, kappa = 0.4
    labels = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    k = cohen_kappa(labels)
    assert k is not None
    assert (k.agreement, k.expected) == pytest.approx((0.7, 0.5))
    assert k.kappa == pytest.approx(0.4)


def test_kappa_is_undefined_when_both_raters_are_constant() -> None:
    k = cohen_kappa([("tie", "tie")] * 5)
    assert k is not None and k.kappa is None
