"""The shadow verdict from a route's ``promote_when``: ``ready``, ``not_ready``, ``insufficient_data`` or
``judge_unreliable``.

``Verdict`` is incremental: pairs are added in time order and the verdict can be asked for after any of them, at
the cost of a few float operations per criterion. The report (``report.py``) and the simulator
(``simulate.py``) both drive this same code, so the simulated error rates are those of the real verdict.

Each criterion is ``pass``, ``fail``, ``undecided`` (or ``n/a``):

- **fail** when the estimate misses the bound;
- **pass**, with ``decide_on: anytime`` (the default), once an anytime-valid test shows the bound holds: a
  betting test (``sequential.BettingTest``) for pass rates, score means, judge scores, the candidate error rate and
  paired differences against the primary; time-uniform confidence sequences on both sides' p95 for latency
  ratios. Each is valid at ``alpha`` under continuous monitoring. ``ready`` needs every criterion to pass, so a
  wrong ``ready`` needs a wrong pass of a criterion that in truth fails: its chance is at most ``alpha`` for the
  whole verdict, with no split between criteria (an intersection-union test, Berger 1982). The cost ratio is
  decided on its estimate (a ratio of means of unbounded costs has no assumption-free sequential test); it is
  marked ``decided_on: estimate``.
- ``decide_on: ci``: pass when the fixed-horizon 95% interval (Wilson, Newcombe, t) clears the bound: right for
  one look at a planned sample size only. ``estimate``: the point estimate decides.

Judges: a judge comparator a criterion relies on must be reliable (``judging.reliability``): a constant judge, one
below ``judge_min_consistency`` or above ``judge_max_parse_failure_rate`` makes the verdict ``judge_unreliable``
(once ``min_pairs`` are in), never ``ready``. Judge scores count only order-consistent pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from routing.shadow.comparators import Kind
from routing.shadow.config import PromoteWhen
from routing.shadow.judging import SCORE, JudgeTally, issues, reliability
from routing.shadow.paired import PairedCounts, newcombe_paired
from routing.shadow.record import DROPPED, PAIRED, PairRecord
from routing.shadow.sequential import BettingTest, QuantileBounds, lower_bound, pairs_needed, upper_bound
from routing.shadow.stats import mean_ci, mean_sd, n_for_mean, n_for_proportion, percentile, wilson

READY, NOT_READY, INSUFFICIENT, JUDGE_UNRELIABLE = (
    "ready",
    "not_ready",
    "insufficient_data",
    "judge_unreliable",
)
VERDICTS = (READY, NOT_READY, INSUFFICIENT, JUDGE_UNRELIABLE)
PASS, FAIL, UNDECIDED, NA = "pass", "fail", "undecided", "n/a"
ANYTIME, CI, ESTIMATE = "anytime", "ci", "estimate"


def _f(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else x


class MeanCriterion:
    """A bound on the mean of observations in ``[lo, hi]``.

    ``flavour``: ``rate`` (0/1 observations: Wilson snapshot), ``mean`` (t snapshot) or ``paired`` (candidate
    minus primary of 0/1 scores: Newcombe snapshot)."""

    __slots__ = (
        "flavour",
        "hi",
        "lo",
        "name",
        "table",
        "tests",
        "threshold",
        "total",
        "values",
        "vmax",
        "vmin",
    )

    def __init__(
        self,
        name: str,
        flavour: str,
        vmin: float | None,
        vmax: float | None,
        threshold: Any,
        lo: float = 0.0,
        hi: float = 1.0,
    ) -> None:
        self.name, self.flavour, self.vmin, self.vmax, self.threshold = name, flavour, vmin, vmax, threshold
        self.lo, self.hi = lo, hi
        self.tests: list[BettingTest] = []
        if vmin is not None:
            self.tests.append(BettingTest(vmin, lo, hi, above=True))
        if vmax is not None:
            self.tests.append(BettingTest(vmax, lo, hi, above=False))
        self.values: list[float] = []
        self.total = 0.0
        self.table = [0, 0, 0, 0]  # paired: both, primary only, candidate only, neither

    def add(self, x: float) -> None:
        if self.flavour == "rate":
            x = 1.0 if x >= 0.5 else 0.0
        for t in self.tests:
            t.update(x)
        self.values.append(x)
        self.total += x

    def add_pair(self, primary: float, candidate: float) -> None:
        pp, cc = primary >= 0.5, candidate >= 0.5
        self.table[0 if pp and cc else 1 if pp else 2 if cc else 3] += 1
        self.add(candidate - primary)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def estimate(self) -> float | None:
        return self.total / len(self.values) if self.values else None

    def _missed(self, est: float) -> bool:
        return (self.vmin is not None and est < self.vmin) or (self.vmax is not None and est > self.vmax)

    def snapshot(self) -> tuple[float, float] | None:
        """The fixed-horizon 95% interval (None when it cannot be formed: fewer than two values, or a mean with
        zero variance, which is no evidence)."""
        n = self.n
        if n == 0:
            return None
        if self.flavour == "rate":
            iv = wilson(round(self.total), n)
        elif self.flavour == "paired":
            iv = newcombe_paired(PairedCounts(*self.table))
        else:
            iv = mean_ci(self.values)
            if n < 2 or iv.low == iv.high:
                return None
        return iv.low, iv.high

    def status(self, mode: str, alpha: float) -> str:
        est = self.estimate
        if est is None:
            return UNDECIDED
        if self._missed(est):
            return FAIL
        if mode == ESTIMATE:
            return PASS
        if mode == ANYTIME:
            return PASS if all(t.rejects(alpha) for t in self.tests) else UNDECIDED
        iv = self.snapshot()
        if iv is None:
            return UNDECIDED
        ok = (self.vmin is None or iv[0] >= self.vmin) and (self.vmax is None or iv[1] <= self.vmax)
        return PASS if ok else UNDECIDED

    def needed(self, mode: str, alpha: float) -> int | None:
        """More observations likely needed to pass (None: not at the current estimate)."""
        est = self.estimate
        if est is None:
            return None
        if mode == ANYTIME:
            needs = [pairs_needed(t, self.values, alpha) for t in self.tests]
        else:
            needs = []
            for bound, above in ((self.vmin, True), (self.vmax, False)):
                if bound is None:
                    continue
                if self.flavour == "rate":
                    total = n_for_proportion(est, self.n, bound, above)
                else:
                    mean, sd = mean_sd(self.values)
                    total = n_for_mean(mean, sd, self.n, bound, above)
                needs.append(None if total is None else max(0, total - self.n))
        if any(x is None for x in needs):
            return None
        return max(1, max((x for x in needs if x is not None), default=1))

    def report(self, mode: str, alpha: float, status: str) -> dict[str, Any]:
        c: dict[str, Any] = {
            "name": self.name,
            "status": status,
            "value": _f(self.estimate) if self.n else None,
            "threshold": self.threshold,
            "n": self.n,
        }
        if not self.n:
            c["detail"] = "no data yet"
            return c
        snap = self.snapshot()
        c["snapshot_ci95"] = [_f(snap[0]), _f(snap[1])] if snap is not None else None
        if mode == ANYTIME:
            bounds: dict[str, float] = {}
            if self.vmin is not None:
                bounds["lower"] = lower_bound(self.values, alpha, self.lo, self.hi)
            if self.vmax is not None:
                bounds["upper"] = upper_bound(self.values, alpha, self.lo, self.hi)
            c["anytime"] = {
                "alpha": alpha,
                "e_value": min(t.e_value for t in self.tests) if self.tests else None,
                "threshold": 1 / alpha,
                **bounds,
            }
        if status == UNDECIDED:
            need = self.needed(mode, alpha)
            if need is not None:
                c["pairs_needed"] = need
            c["detail"] = (
                "not yet shown at the anytime-valid level"
                if mode == ANYTIME
                else "95% interval still straddles the bound"
            )
        return c


class QuantileRatioCriterion:
    """Candidate p95 / primary p95 at most ``limit``: passes when the anytime upper bound of the candidate's p95
    over the anytime lower bound of the primary's (each at ``alpha / 2``) is within it."""

    __slots__ = ("cand", "limit", "name", "optional", "prim")

    def __init__(self, name: str, limit: float, optional: bool) -> None:
        self.name, self.limit, self.optional = name, limit, optional
        self.prim: list[float] = []
        self.cand: list[float] = []

    def add(self, primary: float, candidate: float) -> None:
        self.prim.append(primary)
        self.cand.append(candidate)

    def _ratio(self) -> float | None:
        if not self.prim:
            return None
        p = percentile(sorted(self.prim), 95)
        c = percentile(sorted(self.cand), 95)
        return c / p if p > 0 else None

    def _bound(self, alpha: float) -> float:
        qb = QuantileBounds(0.95, alpha / 2)
        _, c_hi = qb.bounds(sorted(self.cand))
        p_lo, _ = qb.bounds(sorted(self.prim))
        return c_hi / p_lo if p_lo > 0 and not math.isinf(c_hi) else math.inf

    def status(self, mode: str, alpha: float, n_quality: int) -> str:
        r = self._ratio()
        if r is None:
            return NA if self.optional and n_quality > 0 else UNDECIDED
        if r > self.limit:
            return FAIL
        if mode != ANYTIME:
            return PASS
        return PASS if self._bound(alpha) <= self.limit else UNDECIDED

    def needed(self, alpha: float) -> int | None:
        """Pairs at which the bound would clear the limit if both sides kept their current distributions."""
        n = len(self.prim)
        cs, ps = sorted(self.cand), sorted(self.prim)
        qb = QuantileBounds(0.95, alpha / 2)

        def clears(m: int) -> bool:
            lo_k, hi_k = qb.count_band(m)
            if hi_k + 1 > m or lo_k < 1:
                return False
            c_hi = percentile(cs, 100 * (hi_k + 1) / m)
            p_lo = percentile(ps, 100 * lo_k / m)
            return p_lo > 0 and c_hi / p_lo <= self.limit

        m = max(n, 2)
        while not clears(m):
            m *= 2
            if m > 10_000_000:
                return None
        lo, hi = m // 2, m
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if clears(mid) else (mid, hi)
        return max(1, hi - n)

    def report(self, mode: str, alpha: float, status: str) -> dict[str, Any]:
        c: dict[str, Any] = {
            "name": self.name,
            "status": status,
            "value": self._ratio(),
            "threshold": {"max": self.limit},
            "n": len(self.prim),
        }
        if status == NA:
            c["detail"] = "no streamed pairs"
        elif not self.prim:
            c["detail"] = "no data yet"
        elif mode == ANYTIME:
            b = self._bound(alpha)
            c["anytime"] = {"alpha": alpha, "upper": _f(b)}
            if status == UNDECIDED:
                c["detail"] = "the anytime-valid bound of the ratio is still above the limit"
                need = self.needed(alpha)
                if need is not None:
                    c["pairs_needed"] = need
        return c


class JudgeWatch:
    """One judge comparator's tally and the candidate's scores on its order-consistent pairs."""

    __slots__ = ("tally", "scores")

    tally: JudgeTally
    scores: list[MeanCriterion]
    """Criteria fed by this judge's consistent-pair scores (non-inferiority, and ``scores`` bounds)."""

    def __init__(self, tally: JudgeTally | None = None, scores: list[MeanCriterion] | None = None) -> None:
        self.tally = JudgeTally() if tally is None else tally
        self.scores = [] if scores is None else scores


class Verdict:
    """The verdict over pairs added in time order (``add``); ``state()`` is cheap, ``report()`` has the details."""

    def __init__(self, pw: PromoteWhen, kinds: dict[str, Kind]) -> None:
        self.pw = pw
        self.mode = pw.decide_on
        self.alpha = pw.alpha
        self.n = 0
        self.scores: dict[str, MeanCriterion] = {}
        self.paired: dict[str, MeanCriterion] = {}
        self.judges: dict[str, JudgeWatch] = {}
        for name, th in pw.scores.items():
            kind = kinds.get(name, "score")
            if th.min is not None or th.max is not None:
                crit = MeanCriterion(
                    f"score:{name}",
                    "rate" if kind == "pass" else "mean",
                    th.min,
                    th.max,
                    {"min": th.min, "max": th.max},
                )
                if kind == "judge":
                    self.judges.setdefault(name, JudgeWatch()).scores.append(crit)
                else:
                    self.scores[name] = crit
            if th.margin is not None:
                self.paired[name] = MeanCriterion(
                    f"paired:{name}",
                    "paired",
                    -th.margin,
                    None,
                    {"min_difference": -th.margin},
                    lo=-1.0,
                    hi=1.0,
                )
        if pw.judge_margin is not None:
            bound = 0.5 - pw.judge_margin
            for name, kind in kinds.items():
                if kind == "judge":
                    self.judges.setdefault(name, JudgeWatch()).scores.append(
                        MeanCriterion(f"judge_non_inferior:{name}", "mean", bound, None, bound)
                    )
        self.errors = (
            MeanCriterion(
                "candidate_error_rate",
                "rate",
                None,
                pw.max_candidate_error_rate,
                {"min": None, "max": pw.max_candidate_error_rate},
            )
            if pw.max_candidate_error_rate is not None
            else None
        )
        self.latency = (
            QuantileRatioCriterion("latency_p95_ratio", pw.max_latency_p95_ratio, False)
            if pw.max_latency_p95_ratio is not None
            else None
        )
        self.ttft = (
            QuantileRatioCriterion("ttft_p95_ratio", pw.max_ttft_p95_ratio, True)
            if pw.max_ttft_p95_ratio is not None
            else None
        )
        self._all = self._means()

    # -- feeding ------------------------------------------------------------------------------------------------
    def add(self, p: PairRecord) -> None:
        if p.outcome == DROPPED:
            return
        self.add_sent(not p.candidate.ok)
        if p.outcome != PAIRED:
            return
        self._add_quality(
            p.scores, p.baseline, {name: w.tally.add_pair(p, name) for name, w in self.judges.items()}
        )
        for q, attr in ((self.latency, "latency_s"), (self.ttft, "ttft_s")):
            if q is not None:
                a, b = getattr(p.primary, attr), getattr(p.candidate, attr)
                if a is not None and b is not None:
                    q.add(float(a), float(b))

    def add_judged(
        self,
        scores: Mapping[str, float],
        baseline: Mapping[str, float],
        answers: Mapping[str, tuple[str, str]],
    ) -> None:
        """A quality pair given as values (the simulator's way in): comparator scores, the primary's scores, and
        what each judge said with the primary first and with the candidate first."""
        self._add_quality(
            scores,
            baseline,
            {
                name: SCORE.get(w.tally.add(*answers[name])) if name in answers else None
                for name, w in self.judges.items()
            },
        )

    def _add_quality(
        self, scores: Mapping[str, float], baseline: Mapping[str, float], judged: Mapping[str, float | None]
    ) -> None:
        self.n += 1
        for name, crit in self.scores.items():
            v = scores.get(name)
            if v is not None:
                crit.add(v)
        for name, crit in self.paired.items():
            c, b = scores.get(name), baseline.get(name)
            if c is not None and b is not None:
                crit.add_pair(b, c)
        for name, s in judged.items():
            if s is not None:
                for crit in self.judges[name].scores:
                    crit.add(s)

    def add_sent(self, candidate_failed: bool) -> None:
        """A pair whose shadow call was made (for the candidate error rate)."""
        if self.errors is not None:
            self.errors.add(1.0 if candidate_failed else 0.0)

    # -- deciding -----------------------------------------------------------------------------------------------
    def _means(self) -> list[MeanCriterion]:
        out = list(self.scores.values()) + list(self.paired.values())
        for w in self.judges.values():
            out += w.scores
        if self.errors is not None:
            out.append(self.errors)
        return out

    def unreliable(self) -> dict[str, list[str]]:
        """Judge comparator -> why it cannot be relied on (only judges some criterion uses)."""
        out: dict[str, list[str]] = {}
        for name, w in self.judges.items():
            reasons = reliability(
                w.tally, self.pw.judge_min_consistency, self.pw.judge_max_parse_failure_rate
            )
            if reasons:
                out[name] = reasons
        return out

    def state(self, cost_ratio: float | None = None) -> str:
        """The verdict alone (what the simulator checks after every pair)."""
        if self.n < self.pw.min_pairs:
            return INSUFFICIENT
        pw = self.pw
        if any(
            issues(w.tally, pw.judge_min_consistency, pw.judge_max_parse_failure_rate)
            for w in self.judges.values()
        ):
            return JUDGE_UNRELIABLE
        statuses = [c.status(self.mode, self.alpha) for c in self._all]
        statuses += [
            q.status(self.mode, self.alpha, self.n) for q in (self.latency, self.ttft) if q is not None
        ]
        if self.pw.max_cost_ratio is not None:
            statuses.append(_cost_status(cost_ratio, self.pw.max_cost_ratio))
        if FAIL in statuses:
            return NOT_READY
        if UNDECIDED in statuses:
            return INSUFFICIENT
        return READY

    def report(self, cost_ratio: float | None = None) -> dict[str, Any]:
        pw, mode, alpha = self.pw, self.mode, self.alpha
        criteria: list[dict[str, Any]] = []
        min_ok = self.n >= pw.min_pairs
        mp: dict[str, Any] = {
            "name": "min_pairs",
            "status": PASS if min_ok else UNDECIDED,
            "value": self.n,
            "threshold": pw.min_pairs,
        }
        if not min_ok:
            mp["pairs_needed"] = pw.min_pairs - self.n
        criteria.append(mp)
        for c in self._all:
            criteria.append(c.report(mode, alpha, c.status(mode, alpha)))
        for q in (self.latency, self.ttft):
            if q is not None:
                criteria.append(q.report(mode, alpha, q.status(mode, alpha, self.n)))
        if pw.max_cost_ratio is not None:
            st = _cost_status(cost_ratio, pw.max_cost_ratio)
            cc: dict[str, Any] = {
                "name": "cost_ratio",
                "status": st,
                "value": cost_ratio,
                "threshold": {"max": pw.max_cost_ratio},
                "decided_on": ESTIMATE,
            }
            if cost_ratio is None:
                cc["detail"] = "no data yet"
            criteria.append(cc)
        failing = [c["name"] for c in criteria if c["status"] == FAIL]
        undecided = [c for c in criteria if c["status"] == UNDECIDED]
        needs = [c["pairs_needed"] for c in undecided if c.get("pairs_needed") is not None]
        unreliable = self.unreliable()
        judges = {
            name: {"reliable": name not in unreliable, "reasons": unreliable.get(name, [])}
            for name in self.judges
        }
        out: dict[str, Any] = {"failing": failing, "criteria": criteria, "decide_on": mode, "judges": judges}
        if mode == ANYTIME:
            out["alpha"] = alpha
        if not min_ok:
            out.update(verdict=INSUFFICIENT, pairs_needed=max(needs) if needs else None)
        elif unreliable:
            out.update(
                verdict=JUDGE_UNRELIABLE,
                pairs_needed=None,
                reason="; ".join(f"{n}: {', '.join(r)}" for n, r in unreliable.items()),
            )
        elif failing:
            out.update(verdict=NOT_READY, pairs_needed=None)
        elif undecided:
            out.update(verdict=INSUFFICIENT, pairs_needed=max(needs) if needs else None)
        else:
            out.update(verdict=READY, pairs_needed=0)
        return out


def _cost_status(ratio: float | None, limit: float) -> str:
    if ratio is None:
        return UNDECIDED
    return PASS if ratio <= limit else FAIL


def verdict(
    pairs: Sequence[PairRecord], kinds: dict[str, Kind], pw: PromoteWhen, cost_ratio: float | None
) -> dict[str, Any]:
    """The verdict over ``pairs`` (in time order)."""
    v = Verdict(pw, kinds)
    for p in pairs:
        v.add(p)
    return v.report(cost_ratio)
