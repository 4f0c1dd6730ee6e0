"""How far an ``llm_judge`` can be trusted, measured on the pairs it judged.

Every pair is judged twice with the answers swapped (``comparators.LlmJudge``): once with the primary's answer
first, once with the candidate's first. Each order's answer is ``1`` (the first answer is better), ``2`` (the
second) or ``tie``. Translated to the candidate's point of view, the pair's **outcome** is:

- ``win``: the candidate preferred in both orders; ``loss``: the primary preferred in both;
- ``tie``: ``tie`` in both orders;
- ``inconsistent``: anything else: the judge's preference depended on the order, so the pair says nothing about
  the models. Inconsistent pairs are their own category; they are not counted as ties.

From the outcomes and the raw answers (Zheng et al., "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena",
NeurIPS 2023, measure the same on strong judges and find inconsistency common):

- **order consistency**: the share of judged pairs whose two orders agree (win, loss or tie);
- **position bias**: the share of all answers naming the first slot minus the share naming the second. Every pair
  is shown both ways round, so a judge that looks only at content names each slot equally often: 0. A judge that
  always answers "1" scores 1;
- **tie rate**: the share of answers that are ``tie``;
- **parse-failure rate**: judge calls whose reply held no verdict, over all pairs the judge was asked about;
- **constant**: every answer the same (always "1", always "2" or always "tie"): the judge reacts to nothing;
- **agreement with people**: Cohen's kappa between the judge's outcomes and people's preferences for the same
  requests, where ``/v1/feedback`` carries them.

``reliability`` turns these into reasons a verdict must not rely on the judge.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from routing.shadow.record import PairRecord

WIN, LOSS, TIE, INCONSISTENT = "win", "loss", "tie", "inconsistent"
OUTCOMES = (WIN, LOSS, TIE, INCONSISTENT)
ANSWERS = ("1", "2", "tie")
SCORE = {WIN: 1.0, TIE: 0.5, LOSS: 0.0}
"""The candidate's judge score of a consistent pair (inconsistent pairs have none)."""

UNPARSED = "JudgeUnparsed"
"""Prefix of the pair error a judge reply without a verdict leaves (the exception's class name)."""
_DETAIL = re.compile(r"primary-first:(1|2|tie) candidate-first:(1|2|tie)")


def detail(primary_first: str, candidate_first: str) -> str:
    """The pair detail recording what the judge said in each order."""
    return f"primary-first:{primary_first} candidate-first:{candidate_first}"


def answers_of(text: str | None) -> tuple[str, str] | None:
    """(primary-first answer, candidate-first answer) from a pair's judge detail; None for records without it."""
    if not text:
        return None
    m = _DETAIL.search(text)
    return (m.group(1), m.group(2)) if m else None


def outcome(primary_first: str, candidate_first: str) -> str:
    """The pair's outcome for the candidate. With the primary first, "2" names the candidate; with the
    candidate first, "1" does."""
    if primary_first == "2" and candidate_first == "1":
        return WIN
    if primary_first == "1" and candidate_first == "2":
        return LOSS
    if primary_first == "tie" and candidate_first == "tie":
        return TIE
    return INCONSISTENT


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


class JudgeTally:
    """Running counts for one judge comparator (add pairs in any order)."""

    __slots__ = ("outcomes", "answers", "unparsed", "failed", "unrecorded")

    outcomes: Counter[str]
    answers: Counter[str]
    """Answers over both orders: ``1`` (first slot), ``2`` (second slot), ``tie``."""
    unparsed: int
    """Pairs where a judge reply held no verdict."""
    failed: int
    """Pairs where the judge call failed otherwise (timeouts, errors)."""
    unrecorded: int
    """Scored pairs stored without the per-order answers (not told apart: left out of every figure)."""

    def __init__(
        self,
        outcomes: Counter[str] | None = None,
        answers: Counter[str] | None = None,
        unparsed: int = 0,
        failed: int = 0,
        unrecorded: int = 0,
    ) -> None:
        self.outcomes = Counter() if outcomes is None else outcomes
        self.answers = Counter() if answers is None else answers
        self.unparsed = unparsed
        self.failed = failed
        self.unrecorded = unrecorded

    def add(self, primary_first: str, candidate_first: str) -> str:
        o = outcome(primary_first, candidate_first)
        self.outcomes[o] += 1
        self.answers[primary_first] += 1
        self.answers[candidate_first] += 1
        return o

    def add_pair(self, pair: PairRecord, name: str) -> float | None:
        """Count one quality pair's judgement by comparator ``name``; the candidate's score when the pair is
        order-consistent, else None."""
        err = pair.errors.get(name)
        if err is not None:
            self.add_error(err)
            return None
        ans = answers_of(pair.details.get(name))
        if ans is not None:
            return SCORE.get(self.add(*ans))
        if name in pair.scores:
            self.unrecorded += 1  # a 0.5 could be a tie or an inconsistent pair: left out
        return None

    def add_error(self, error: str) -> None:
        if error.startswith(UNPARSED):
            self.unparsed += 1
        else:
            self.failed += 1

    @property
    def judged(self) -> int:
        """Pairs with a verdict in both orders."""
        return sum(self.outcomes.values())

    @property
    def consistency(self) -> float | None:
        n = self.judged
        return _rate(n - self.outcomes[INCONSISTENT], n)

    @property
    def position_bias(self) -> float | None:
        total = sum(self.answers.values())
        return _rate(self.answers["1"] - self.answers["2"], total)

    @property
    def tie_rate(self) -> float | None:
        return _rate(self.answers["tie"], sum(self.answers.values()))

    @property
    def parse_failure_rate(self) -> float | None:
        return _rate(self.unparsed, self.judged + self.unparsed)

    @property
    def constant(self) -> str | None:
        """The one answer a judge always gave (at least two pairs judged); None when it varied."""
        if self.judged < 2:
            return None
        given = [a for a in ANSWERS if self.answers[a]]
        return given[0] if len(given) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        total = sum(self.answers.values())
        return {
            "judged": self.judged,
            "outcomes": {o: self.outcomes[o] for o in OUTCOMES},
            "order_consistency": self.consistency,
            "answers": {"first": self.answers["1"], "second": self.answers["2"], "tie": self.answers["tie"]},
            "first_rate": _rate(self.answers["1"], total),
            "second_rate": _rate(self.answers["2"], total),
            "tie_rate": self.tie_rate,
            "position_bias": self.position_bias,
            "parse_failures": self.unparsed,
            "parse_failure_rate": self.parse_failure_rate,
            "failed": self.failed,
            "unrecorded": self.unrecorded,
            "constant": self.constant,
        }


def issues(t: JudgeTally, min_consistency: float, max_parse_failure_rate: float | None) -> list[str]:
    """Codes of what makes the judge unreliable (cheap: checked after every pair by the simulator)."""
    out: list[str] = []
    if t.judged == 0 and t.unrecorded:
        out.append("unrecorded")
    if t.constant is not None:
        out.append("constant")
    c = t.consistency
    if c is not None and c < min_consistency:
        out.append("consistency")
    pf = t.parse_failure_rate
    if max_parse_failure_rate is not None and pf is not None and pf > max_parse_failure_rate:
        out.append("parse_failures")
    return out


def reliability(t: JudgeTally, min_consistency: float, max_parse_failure_rate: float | None) -> list[str]:
    """Why a verdict must not rely on this judge, in words (empty: it may)."""
    reasons: list[str] = []
    for code in issues(t, min_consistency, max_parse_failure_rate):
        if code == "unrecorded":
            reasons.append(
                f"the per-order answers of its {t.unrecorded} pairs were not recorded: reliability unknown"
            )
        elif code == "constant":
            said = {
                "1": 'always answers "1" (the first answer)',
                "2": 'always answers "2" (the second answer)',
                "tie": 'always answers "tie"',
            }[t.constant or ""]
            reasons.append(f"constant judge: {said} over {t.judged} pairs")
        elif code == "consistency":
            reasons.append(
                f"order consistency {t.consistency or 0.0:.1%} below the floor {min_consistency:.0%} "
                f"({t.outcomes[INCONSISTENT]} of {t.judged} pairs changed with the order)"
            )
        else:
            reasons.append(
                f"parse failures {t.parse_failure_rate or 0.0:.1%} above {max_parse_failure_rate or 0.0:.0%}"
            )
    return reasons


# -- agreement with people -------------------------------------------------------------------------------------
def human_outcome(value: float) -> str:
    """A person's preference from a feedback number: above 0.5 the candidate (win), below the primary (loss),
    0.5 a tie."""
    return WIN if value > 0.5 else LOSS if value < 0.5 else TIE


class Kappa:
    """Agreement of two raters on the same items, beyond chance."""

    __slots__ = ("n", "agreement", "expected", "kappa")

    n: Final[int]
    agreement: Final[float]
    """Observed agreement."""
    expected: Final[float]
    """Agreement expected by chance from the two raters' marginal rates."""
    kappa: Final[float | None]
    """Cohen's kappa: (observed - expected) / (1 - expected); None when chance agreement is 1 (both raters
    constant and equal: kappa is undefined)."""

    def __init__(self, n: int, agreement: float, expected: float, kappa: float | None) -> None:
        self.n = n
        self.agreement = agreement
        self.expected = expected
        self.kappa = kappa

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "agreement": self.agreement, "expected": self.expected, "kappa": self.kappa}


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> Kappa | None:
    """Cohen's kappa of two raters' labels on the same items (None without items)."""
    n = len(pairs)
    if n == 0:
        return None
    a = Counter(x for x, _ in pairs)
    b = Counter(y for _, y in pairs)
    po = sum(1 for x, y in pairs if x == y) / n
    pe = sum(a[k] * b[k] for k in a) / (n * n)
    kappa = None if pe >= 1.0 else (po - pe) / (1.0 - pe)
    return Kappa(n, po, pe, kappa)
