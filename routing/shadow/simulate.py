"""Proof by simulation: the real verdict code on synthetic pair streams whose truth is known.

Each scenario is a candidate of known quality against the primary, judged by a judge of known behaviour. A run
feeds sampled pairs one by one into ``verdict.Verdict`` (the class the report uses) and asks for the verdict after
every pair from ``min_pairs`` on, as a team watching the dashboard would, stopping at the first ``ready`` (the team
promotes) or at the horizon. Over many runs: how often ``ready`` came (for a candidate that misses a criterion, or
whose judge says nothing, that is a **false ready**), how often by 2,000 pairs (**power**, where ``ready`` is
right), the median pairs to it, and how often ``judge_unreliable`` was shown.

Per sampled request:

- the candidate's call fails with probability ``error_rate`` (a ``candidate_failed`` pair, no quality figures);
- otherwise the true comparison is drawn: the candidate's answer is better (``win``), worse (``loss``) or as good;
- ``json_valid`` passes on the primary with ``primary_pass`` and on the candidate with ``candidate_pass``; with
  probability ``pass_correlation`` both use the same draw (most requests are easy or hard for both);
- the judge answers twice, primary first then candidate first. ``honest``: the better answer's slot (``tie`` when
  as good); ``noisy``: honest, but each answer at random with probability ``rate``; ``biased``: honest, but each
  answer "1" with probability ``rate``; ``first`` / ``second`` / ``tie``: always that answer; ``random``: at random.

The default criteria: ``min_pairs`` 100, the judge non-inferior at ``judge_margin`` 0.05, ``json_valid`` at least
0.90 and at most ``json_margin`` 0.02 below the primary on the same requests, the candidate error rate at most
0.05, ``alpha`` 0.05, ``decide_on: anytime``. Pure Python, seeded per scenario and run: the same arguments give the
same table on any machine and any number of worker processes.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from routing.shadow.config import PromoteWhen
from routing.shadow.verdict import JUDGE_UNRELIABLE, READY, Verdict

_PROCESSES = multiprocessing.get_context("forkserver")
"""How ``jobs`` > 1 starts its processes: each forked from a fresh server process, not from the caller (a fork of
the caller would inherit whatever it runs: its threads' locks, a tracer such as coverage's, which made the default
test tier's simulations ~6x slower)."""

KINDS: dict[str, Any] = {"json_valid": "pass", "llm_judge": "judge"}
POWER_AT = 2000
"""Power is the chance of ``ready`` by this many pairs."""

_ANSWER = {  # (true comparison, order) -> what an honest judge says; order 0: primary first, 1: candidate first
    ("win", 0): "2",
    ("win", 1): "1",
    ("loss", 0): "1",
    ("loss", 1): "2",
    ("same", 0): "tie",
    ("same", 1): "tie",
}
_ANY = ("1", "2", "tie")


@dataclass(frozen=True, slots=True)
class Judge:
    mode: str
    """honest, noisy, biased, first, second, tie, random."""
    rate: float = 0.0
    """noisy: share of answers at random; biased: share of answers "1"."""

    @property
    def informative(self) -> bool:
        return self.mode in ("honest", "noisy", "biased")

    @property
    def label(self) -> str:
        if self.mode in ("noisy", "biased"):
            return f"{self.mode} {self.rate:.0%}"
        return {"first": 'always "1"', "second": 'always "2"', "tie": 'always "tie"'}.get(
            self.mode, self.mode
        )

    def answer(self, truth: str, order: int, rng: random.Random) -> str:
        m = self.mode
        if m == "honest":
            return _ANSWER[truth, order]
        if m == "noisy":
            return rng.choice(_ANY) if rng.random() < self.rate else _ANSWER[truth, order]
        if m == "biased":
            return "1" if rng.random() < self.rate else _ANSWER[truth, order]
        if m == "random":
            return rng.choice(_ANY)
        return {"first": "1", "second": "2", "tie": "tie"}[m]


HONEST = Judge("honest")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    about: str
    win: float
    """Share of requests where the candidate's answer is truly better."""
    loss: float
    """Share where it is truly worse (the rest: as good)."""
    judge: Judge = HONEST
    primary_pass: float = 0.95
    candidate_pass: float = 0.95
    pass_correlation: float = 0.8
    error_rate: float = 0.01
    judge_margin: float = 0.05
    json_margin: float = 0.02
    json_min: float = 0.90
    max_error_rate: float = 0.05
    expect: str = ""
    """The goal it is held to: ``false_ready`` (at most alpha), ``power`` (ready by 2,000 pairs in 80% of runs),
    ``never_ready``, ``unreliable`` (``judge_unreliable`` shown in 95% of runs, never ready); empty: figures only."""

    @property
    def judge_score(self) -> float:
        """The candidate's true judge score (win 1, as good 0.5, loss 0)."""
        return self.win + (1 - self.win - self.loss) / 2

    @property
    def ready_is_right(self) -> bool:
        """Whether every criterion truly holds (strictly) and the judge carries information."""
        return (
            self.judge.informative
            and self.judge_score > 0.5 - self.judge_margin
            and self.candidate_pass > self.json_min
            and self.candidate_pass - self.primary_pass > -self.json_margin
            and self.error_rate < self.max_error_rate
        )

    @property
    def truth(self) -> str:
        """What a correct verdict is, in words."""
        if not self.judge.informative:
            return "judge says nothing"
        if self.expect == "unreliable":
            return "judge too unreliable"
        missed = []
        if self.judge_score <= 0.5 - self.judge_margin:
            missed.append("judge score")
        if self.candidate_pass - self.primary_pass <= -self.json_margin:
            missed.append("json_valid margin")
        if self.error_rate >= self.max_error_rate:
            missed.append("error rate")
        return "misses " + ", ".join(missed) if missed else "meets every criterion"

    def promote_when(self, alpha: float) -> PromoteWhen:
        return PromoteWhen.model_validate(
            {
                "min_pairs": 100,
                "alpha": alpha,
                "decide_on": "anytime",
                "judge_margin": self.judge_margin,
                "scores": {"json_valid": {"min": self.json_min, "margin": self.json_margin}},
                "max_candidate_error_rate": self.max_error_rate,
            }
        )


def _c(s: float) -> tuple[float, float]:
    """(win, loss) shares giving judge score ``s`` with 30% of requests decided either way or more."""
    decided = max(0.3, 2 * abs(s - 0.5) + 0.2)
    win = s - (1 - decided) / 2
    return round(win, 6), round(decided - win, 6)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("aa", "A/A: identical models, margins 0.05 / 0.02", 0.15, 0.15, expect="power"),
    Scenario(
        "aa-zero-margin",
        "A/A with zero margins (ready would claim 'better')",
        0.15,
        0.15,
        judge_margin=0.0,
        json_margin=0.0,
        expect="false_ready",
    ),
    Scenario("at-margin", "judge score 0.45 = 0.5 - margin exactly", *_c(0.45), expect="false_ready"),
    Scenario("just-outside", "judge score 0.44, just outside the margin", *_c(0.44), expect="false_ready"),
    Scenario("just-inside", "judge score 0.47, just inside the margin", *_c(0.47)),
    Scenario("better", "clearly better: judge score 0.60", *_c(0.60), expect="power"),
    Scenario(
        "json-outside",
        "judged better, json_valid 2.5 points below the primary (margin 2)",
        *_c(0.60),
        candidate_pass=0.925,
        expect="false_ready",
    ),
    Scenario(
        "errors-outside",
        "judged better, 5.5% candidate errors (cap 5%)",
        *_c(0.60),
        error_rate=0.055,
        expect="false_ready",
    ),
    Scenario("better-noisy", "clearly better", *_c(0.60), judge=Judge("noisy", 0.2), expect="power"),
    Scenario(
        "outside-noisy",
        "judge score 0.44, just outside",
        *_c(0.44),
        judge=Judge("noisy", 0.2),
        expect="false_ready",
    ),
    Scenario(
        "outside-biased",
        "judge score 0.44, just outside",
        *_c(0.44),
        judge=Judge("biased", 0.2),
        expect="false_ready",
    ),
    Scenario("better-biased", "clearly better", *_c(0.60), judge=Judge("biased", 0.6), expect="unreliable"),
    Scenario(
        "outside-very-noisy",
        "judge score 0.44, just outside",
        *_c(0.44),
        judge=Judge("noisy", 0.5),
        expect="unreliable",
    ),
    Scenario("better-first", "clearly better", *_c(0.60), judge=Judge("first"), expect="never_ready"),
    Scenario("better-second", "clearly better", *_c(0.60), judge=Judge("second"), expect="never_ready"),
    Scenario("better-tie", "clearly better", *_c(0.60), judge=Judge("tie"), expect="never_ready"),
    Scenario("better-random", "clearly better", *_c(0.60), judge=Judge("random"), expect="never_ready"),
)


@dataclass(frozen=True, slots=True)
class Run:
    ready_at: int | None
    """Pairs at the first ``ready`` (None: never within the horizon)."""
    unreliable: bool
    """``judge_unreliable`` was shown at some look."""


def one_run(sc: Scenario, pw: PromoteWhen, horizon: int, seed: int) -> Run:
    rng = random.Random(f"{sc.name}:{seed}")
    rand = rng.random
    v = Verdict(pw, KINDS)
    min_pairs = pw.min_pairs
    unreliable = False
    win, win_or_loss = sc.win, sc.win + sc.loss
    answer = sc.judge.answer
    for i in range(1, horizon + 1):
        if rand() < sc.error_rate:
            v.add_sent(True)
        else:
            v.add_sent(False)
            u = rand()
            truth = "win" if u < win else "loss" if u < win_or_loss else "same"
            a = rand()
            b = a if rand() < sc.pass_correlation else rand()
            v.add_judged(
                {"json_valid": 1.0 if b < sc.candidate_pass else 0.0},
                {"json_valid": 1.0 if a < sc.primary_pass else 0.0},
                {"llm_judge": (answer(truth, 0, rng), answer(truth, 1, rng))},
            )
        if v.n >= min_pairs:
            state = v.state()
            if state == READY:
                return Run(i, unreliable)
            if state == JUDGE_UNRELIABLE:
                unreliable = True
    return Run(None, unreliable)


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    runs: int
    horizon: int
    ready: int
    """Runs that reached ``ready`` at some look within the horizon."""
    ready_by_power_at: int
    median_pairs: float | None
    """Median pairs to ``ready`` among the runs that got there."""
    unreliable: int

    @property
    def ready_rate(self) -> float:
        return self.ready / self.runs

    @property
    def power(self) -> float:
        return self.ready_by_power_at / self.runs

    @property
    def unreliable_rate(self) -> float:
        return self.unreliable / self.runs

    def as_dict(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "scenario": sc.name,
            "about": sc.about,
            "judge": sc.judge.label,
            "truth": sc.truth,
            "ready_is_right": sc.ready_is_right,
            "runs": self.runs,
            "horizon": self.horizon,
            "ready_rate": self.ready_rate,
            f"ready_by_{POWER_AT}": self.power,
            "median_pairs_to_ready": self.median_pairs,
            "judge_unreliable_rate": self.unreliable_rate,
        }


def _chunk(args: tuple[Scenario, float, int, int, int]) -> list[Run]:
    sc, alpha, horizon, start, stop = args
    pw = sc.promote_when(alpha)
    return [one_run(sc, pw, horizon, seed) for seed in range(start, stop)]


def run_scenario(sc: Scenario, runs: int, horizon: int, alpha: float = 0.05, jobs: int = 1) -> Result:
    if jobs > 1:
        step = math.ceil(runs / jobs)
        parts = [(sc, alpha, horizon, s, min(runs, s + step)) for s in range(0, runs, step)]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_PROCESSES) as pool:
            done = [r for part in pool.map(_chunk, parts) for r in part]
    else:
        done = _chunk((sc, alpha, horizon, 0, runs))
    at = [r.ready_at for r in done if r.ready_at is not None]
    return Result(
        sc,
        runs,
        horizon,
        len(at),
        sum(1 for x in at if x <= POWER_AT),
        statistics.median(at) if at else None,
        sum(1 for r in done if r.unreliable),
    )


def tolerance(alpha: float, runs: int) -> float:
    """How far above ``alpha`` a false-ready rate estimated from ``runs`` runs may land by Monte-Carlo error
    alone (one-sided 99%: 2.33 standard errors)."""
    return 2.33 * math.sqrt(alpha * (1 - alpha) / runs)


def goal(r: Result, alpha: float) -> tuple[str, bool]:
    """The goal a scenario is held to, and whether it was met."""
    e = r.scenario.expect
    if e == "false_ready":
        return f"false ready <= {alpha:g}", r.ready_rate <= alpha + tolerance(alpha, r.runs)
    if e == "power":
        return f"ready by {POWER_AT:,} >= 80%", r.power >= 0.8
    if e == "never_ready":
        return "never ready", r.ready == 0
    if e == "unreliable":
        return "judge_unreliable >= 95%, never ready", r.unreliable_rate >= 0.95 and r.ready == 0
    return "-", True


def simulate(
    names: Sequence[str] | None = None,
    runs: int = 1000,
    horizon: int = 5000,
    alpha: float = 0.05,
    jobs: int = 1,
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    unknown = sorted(set(names or ()) - {s.name for s in SCENARIOS})
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {', '.join(s.name for s in SCENARIOS)}")
    out = []
    for sc in chosen:
        r = run_scenario(sc, runs, max(horizon, 100), alpha, jobs)
        out.append(r)
        if progress is not None:
            progress(r)
    return out


def markdown_table(results: Sequence[Result], alpha: float) -> str:
    """A Markdown table of the results."""
    head = (
        "scenario",
        "judge",
        "truth",
        "ready (any look)",
        f"ready by {POWER_AT:,}",
        "median pairs to ready",
        "judge_unreliable shown",
        "goal",
        "met",
    )
    rows = []
    for r in results:
        g, ok = goal(r, alpha)
        rows.append(
            (
                f"`{r.scenario.name}`: {r.scenario.about}",
                r.scenario.judge.label,
                r.scenario.truth,
                f"{r.ready_rate:.1%}",
                f"{r.power:.1%}",
                "-" if r.median_pairs is None else f"{r.median_pairs:,.0f}",
                f"{r.unreliable_rate:.1%}",
                g,
                "yes" if ok else "**NO**",
            )
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
