"""The shadow report: per route (and per task within it) over a time window, with a verdict.

Everything here is a pure function of the pair records, the route's request counts and its config, so the JSON
endpoint, the CLI table, the HTML page and the Prometheus gauges all show the same numbers.

Definitions (docs/shadow.md has the long form):
- quality pairs: outcome ``paired`` (both answered, the baseline was not a fallback). Comparator statistics and
  latency/cost comparisons use only these.
- candidate error rate: candidate failures over pairs where the candidate was called (not dropped).
- latency percentiles: linear interpolation; the paired ratio is candidate/primary per pair, summarised by its
  median and geometric mean (95% t interval on the log scale).
- cost per 1,000 requests: mean cost of a quality pair's side x 1000. Projected monthly saving: (primary -
  candidate) cost per request x the route's observed volume (requests per second over the minutes in which
  requests were seen, x 30 days).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from routing.shadow.comparators import Kind, kind_of
from routing.shadow.config import LlmJudgeCompare, PromoteWhen, ShadowConfig
from routing.shadow.judging import (
    INCONSISTENT,
    TIE,
    JudgeTally,
    answers_of,
    cohen_kappa,
    human_outcome,
    outcome,
)
from routing.shadow.paired import PairedCounts, newcombe_paired, paired_mean
from routing.shadow.record import CANDIDATE_FAILED, DROPPED, OUTCOMES, PAIRED, PRIMARY_FAILED, PairRecord
from routing.shadow.stats import (
    Interval,
    mean_ci,
    non_inferiority,
    percentile,
    percentiles,
    ratio_ci,
    t_ppf,
    wilson,
)
from routing.shadow.verdict import INSUFFICIENT, verdict

MONTH_S = 30 * 86400
USD_Q = Decimal("1e-9")


def _usd(d: Decimal) -> str:
    return str(d.quantize(USD_Q))


def _f(x: float) -> float | None:
    """JSON-safe float (NaN/inf -> None)."""
    return None if x is None or math.isnan(x) or math.isinf(x) else x


def _iv(iv: Interval) -> dict[str, Any]:
    return {"estimate": _f(iv.estimate), "ci95": [_f(iv.low), _f(iv.high)], "n": iv.n}


class RouteInfo:
    """What a route's report needs from its configuration."""

    __slots__ = ("route", "shadow", "promote_when", "baseline")

    route: str
    shadow: ShadowConfig | None
    promote_when: PromoteWhen | None
    baseline: list[str]
    """The route's own targets (the baseline models)."""

    def __init__(
        self, route: str, shadow: ShadowConfig | None, promote_when: PromoteWhen | None, baseline: list[str]
    ) -> None:
        self.route = route
        self.shadow = shadow
        self.promote_when = promote_when
        self.baseline = baseline


def comparator_kinds(shadow: ShadowConfig | None, pairs: Iterable[PairRecord]) -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}
    if shadow is not None:
        for c in shadow.compare:
            kinds[c.key] = kind_of(c)
    for p in pairs:
        for name in p.scores:
            kinds.setdefault(name, "score")
    return kinds


def human_metrics(shadow: ShadowConfig | None) -> dict[str, str]:
    """Judge comparator name -> the feedback metric carrying people's preferences, where configured."""
    if shadow is None:
        return {}
    return {
        c.key: c.human_metric for c in shadow.compare if isinstance(c, LlmJudgeCompare) and c.human_metric
    }


def _agreement(
    name: str, metric: str, quality: Sequence[PairRecord], labels: Mapping[str, float]
) -> dict[str, Any]:
    """The judge's outcomes against people's preferences on the same requests (an order-inconsistent pair
    counts as no preference: a tie)."""
    rated = []
    for p in quality:
        ans = answers_of(p.details.get(name))
        if ans is not None and p.id in labels:
            o = outcome(*ans)
            rated.append((TIE if o == INCONSISTENT else o, human_outcome(labels[p.id])))
    k = cohen_kappa(rated)
    return {
        "metric": metric,
        **(k.as_dict() if k is not None else {"n": 0, "agreement": None, "expected": None, "kappa": None}),
    }


def _comparator_stats(
    name: str,
    kind: Kind,
    quality: Sequence[PairRecord],
    ci_method: str,
    margin: float,
    human: tuple[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    vals = [p.scores[name] for p in quality if name in p.scores]
    errors = sum(1 for p in quality if name in p.errors)
    out: dict[str, Any] = {
        "kind": kind,
        "n": len(vals),
        "not_applicable": len(quality) - len(vals) - errors,
        "errors": errors,
    }
    if kind == "pass":
        iv = wilson(sum(1 for v in vals if v >= 0.5), len(vals))
        out.update({"pass_rate": _f(iv.estimate), "ci95": [_f(iv.low), _f(iv.high)]})
        base = [p.baseline[name] for p in quality if name in p.baseline]
        if base:
            biv = wilson(sum(1 for v in base if v >= 0.5), len(base))
            out["baseline"] = {"pass_rate": _f(biv.estimate), "ci95": [_f(biv.low), _f(biv.high)], "n": biv.n}
        both = [
            (p.baseline[name], p.scores[name]) for p in quality if name in p.scores and name in p.baseline
        ]
        if both:
            table = PairedCounts.of(both)
            piv = newcombe_paired(table)
            out["paired"] = {
                "n": piv.n,
                **table.as_dict(),
                "difference": _f(piv.estimate),
                "ci95": [_f(piv.low), _f(piv.high)],
                "interval": "newcombe",
            }
    elif kind == "judge":
        # as stored (legacy, snapshot): every pair scored 1 / 0.5 / 0, order-inconsistent pairs among the 0.5s
        c = Counter(vals)
        ni = non_inferiority(c[1.0], c[0.5], c[0.0], margin)
        d = ni.as_dict()
        out.update({k: (_f(v) if isinstance(v, float) else v) for k, v in d.items() if k != "ci95"})
        out["ci95"] = [_f(ni.score.low), _f(ni.score.high)]
        out["mean"] = _f(ni.score.estimate)
        tally = JudgeTally()
        consistent = [s for s in (tally.add_pair(p, name) for p in quality) if s is not None]
        civ = mean_ci(consistent)
        out["judge"] = {
            **tally.as_dict(),
            "consistent_score": {
                "n": civ.n,
                "estimate": _f(civ.estimate),
                "snapshot_ci95": [None, None] if civ.low == civ.high else [_f(civ.low), _f(civ.high)],
            },
        }
        if human is not None:
            out["judge"]["human"] = _agreement(name, human[0], quality, human[1])
    else:
        iv = mean_ci(vals, ci_method)
        out.update({"mean": _f(iv.estimate), "ci95": [_f(iv.low), _f(iv.high)], "method": ci_method})
    return out


def _paired_cost(quality: Sequence[PairRecord]) -> dict[str, Any]:
    """Candidate minus primary cost per 1,000 requests on the same requests, with a 95% t interval (exact
    Decimal arithmetic; the interval's half-width uses the t quantile)."""
    n = len(quality)
    if n == 0:
        return {"n": 0, "mean": None, "ci95": [None, None]}
    diffs = [(p.candidate.cost - p.primary.cost) * 1000 for p in quality]
    mean = sum(diffs, Decimal(0)) / n
    if n < 2:
        return {"n": n, "mean": _usd(mean), "ci95": [None, None]}
    var = sum(((d - mean) ** 2 for d in diffs), Decimal(0)) / (n - 1)
    half = Decimal(repr(t_ppf(0.975, n - 1))) * var.sqrt() / Decimal(n).sqrt()
    return {"n": n, "mean": _usd(mean), "ci95": [_usd(mean - half), _usd(mean + half)]}


def _lat(xs: list[float]) -> dict[str, Any]:
    d: dict[str, Any] = {k: _f(v) for k, v in percentiles(xs).items()}
    d["n"] = len(xs)
    d["mean"] = _f(math.fsum(xs) / len(xs)) if xs else None
    return d


def _latency_block(quality: Sequence[PairRecord], attr: str) -> dict[str, Any]:
    both = [
        p for p in quality if getattr(p.primary, attr) is not None and getattr(p.candidate, attr) is not None
    ]
    prim = [float(getattr(p.primary, attr)) for p in both]
    cand = [float(getattr(p.candidate, attr)) for p in both]
    block: dict[str, Any] = {"primary": _lat(prim), "candidate": _lat(cand)}
    rc = ratio_ci(prim, cand)
    ci = cast(list[float], rc["ci95"])
    block["paired_ratio"] = {
        "n": rc["n"],
        "median": _f(cast(float, rc["median"])),
        "geomean": _f(cast(float, rc["geomean"])),
        "ci95": [_f(x) for x in ci],
    }
    diff = paired_mean(prim, cand)
    block["paired_difference_s"] = {
        "n": diff.n,
        "mean": _f(diff.estimate),
        "ci95": [_f(diff.low), _f(diff.high)],
    }
    p50p, p50c = block["primary"]["p50"], block["candidate"]["p50"]
    p95p, p95c = block["primary"]["p95"], block["candidate"]["p95"]
    block["p50_ratio"] = p50c / p50p if p50p and p50c is not None else None
    block["p95_ratio"] = p95c / p95p if p95p and p95c is not None else None
    return block


def _hist(prim: list[float], cand: list[float], bins: int = 24) -> dict[str, Any]:
    xs = [x for x in prim + cand if x > 0]
    if not xs:
        return {"edges": [], "primary": [], "candidate": []}
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    width = (hi - lo) / bins
    edges = [10 ** (lo + i * width) for i in range(bins + 1)]

    def count(v: list[float]) -> list[int]:
        c = [0] * bins
        for x in v:
            if x <= 0:
                continue
            i = min(bins - 1, max(0, int((math.log10(x) - lo) / width)))
            c[i] += 1
        return c

    return {"edges": edges, "primary": count(prim), "candidate": count(cand)}


def _series(pairs: Sequence[PairRecord], kinds: dict[str, Kind], buckets: int = 30) -> dict[str, Any]:
    if not pairs:
        return {"bucket_s": None, "t": [], "scores": {}, "latency_p50": {"primary": [], "candidate": []}}
    t0, t1 = pairs[0].ts, pairs[-1].ts
    width = max(1.0, (t1 - t0) / buckets)
    groups: dict[int, list[PairRecord]] = defaultdict(list)
    for p in pairs:
        groups[int((p.ts - t0) // width)].append(p)
    idx = sorted(groups)
    scores: dict[str, list[float | None]] = {}
    for name in kinds:
        row: list[float | None] = []
        for i in idx:
            vals = [p.scores[name] for p in groups[i] if p.outcome == PAIRED and name in p.scores]
            row.append(math.fsum(vals) / len(vals) if vals else None)
        scores[name] = row
    lat: dict[str, list[float | None]] = {"primary": [], "candidate": []}
    for i in idx:
        q = [p for p in groups[i] if p.outcome == PAIRED]
        for side in ("primary", "candidate"):
            xs = sorted(getattr(p, side).latency_s for p in q if getattr(p, side).latency_s is not None)
            lat[side].append(percentile(xs, 50) if xs else None)
    return {
        "bucket_s": width,
        "t": [t0 + i * width for i in idx],
        "scores": scores,
        "latency_p50": lat,
        "pairs": [len(groups[i]) for i in idx],
    }


JUDGE_COLUMNS = (
    "judge",
    "judged",
    "win/loss/tie/inconsistent",
    "order consistency",
    "position bias",
    "tie answers",
    "parse failures",
    "constant",
    "score (consistent pairs)",
    "kappa vs people",
)
"""The judges table of the CLI report and the HTML page."""


def window_note(entry: Mapping[str, Any]) -> str | None:
    """What the CLI report and the HTML page say when a route's window was cut to its latest pairs."""
    w = entry.get("window") or {}
    if not w.get("capped"):
        return None
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(w["from"]))
    return (
        f"read the latest {w['pairs_analysed']:,} of the {w['pairs_in_window']:,} pairs in the window "
        f"(shadow.report_max_pairs): every figure of this route covers {start} UTC onwards"
    )


def judge_cells(comparators: Mapping[str, Any], missing: str = "-") -> list[list[str]]:
    """One row of text per judge comparator of a report entry, for ``JUDGE_COLUMNS``."""

    def pct(v: float | None) -> str:
        return missing if v is None else f"{v:.1%}"

    def num(v: float | None) -> str:
        return missing if v is None else f"{v:.3f}"

    rows = []
    for name, st in comparators.items():
        j = st.get("judge")
        if j is None:
            continue
        o, human, cs = j["outcomes"], j.get("human"), j["consistent_score"]
        lo, hi = cs["snapshot_ci95"]
        ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
        rows.append(
            [
                name,
                str(j["judged"]),
                f"{o['win']}/{o['loss']}/{o['tie']}/{o['inconsistent']}",
                pct(j["order_consistency"]),
                pct(j["position_bias"]),
                pct(j["tie_rate"]),
                pct(j["parse_failure_rate"]),
                str(j["constant"] or "no"),
                num(cs["estimate"]) + ci,
                f"{num(human['kappa'])} (n={human['n']})" if human else missing,
            ]
        )
    return rows


def summarize(
    pairs: Sequence[PairRecord],
    seen: Sequence[tuple[str | None, int, int]],
    shadow: ShadowConfig | None,
    promote_when: PromoteWhen | None,
    now: float,
    with_series: bool = True,
    humans: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """The statistics of one group of pairs (a route, or one task of a route). ``humans``: feedback metric ->
    request id -> value, for judges with a ``human_metric``."""
    pairs = sorted(pairs, key=lambda p: p.ts)
    kinds = comparator_kinds(shadow, pairs)
    ci_method = shadow.ci_method if shadow is not None else "t"
    margin = (
        promote_when.judge_margin
        if promote_when is not None and promote_when.judge_margin is not None
        else 0.05
    )
    outcomes = Counter(p.outcome for p in pairs)
    quality = [p for p in pairs if p.outcome == PAIRED]
    dropped_by = Counter(p.reason or "unknown" for p in pairs if p.outcome == DROPPED)
    excluded_by = Counter(
        p.reason or p.primary.error or "unknown" for p in pairs if p.outcome == PRIMARY_FAILED
    )
    sent = [p for p in pairs if p.outcome != DROPPED]
    cand_fail = sum(1 for p in sent if not p.candidate.ok)
    prim_fail = sum(1 for p in pairs if not p.primary.ok and p.primary.error != "fallback")
    cand_err = wilson(cand_fail, len(sent))
    prim_err = wilson(prim_fail, len(pairs))
    counts: dict[str, Any] = {
        "sampled": len(pairs),
        **{o: outcomes.get(o, 0) for o in OUTCOMES},
        "quality_pairs": len(quality),
        "excluded": outcomes.get(PRIMARY_FAILED, 0),
        "excluded_by_reason": dict(excluded_by),
        "dropped_by_reason": dict(dropped_by),
        "dropped_for_consent": dropped_by.get("consent", 0),
        "streamed": sum(1 for p in pairs if p.stream),
        "reverse": sum(1 for p in pairs if p.direction == "reverse"),
    }
    hm = human_metrics(shadow)
    comps = {
        name: _comparator_stats(
            name,
            kind,
            quality,
            ci_method,
            margin,
            (hm[name], (humans or {}).get(hm[name], {})) if name in hm else None,
        )
        for name, kind in kinds.items()
    }

    # cost (Decimal throughout); a side whose model has no price has no cost, never $0 (no saving from it)
    unpriced = {
        side: sum(1 for p in quality if not getattr(p, side).priced) for side in ("primary", "candidate")
    }

    def per_req(side: str) -> Decimal | None:
        if not quality or unpriced[side]:
            return None
        return sum((getattr(p, side).cost for p in quality), Decimal(0)) / len(quality)

    prim_req, cand_req = per_req("primary"), per_req("candidate")
    requests_seen = sum(n for _, _, n in seen)
    minutes = [m for _, m, _ in seen]
    span_s = (max(minutes) - min(minutes) + 1) * 60 if minutes else 0
    monthly = requests_seen / span_s * MONTH_S if span_s else 0.0
    cost: dict[str, Any] = {
        "primary_per_1k_usd": _usd(prim_req * 1000) if prim_req is not None else None,
        "candidate_per_1k_usd": _usd(cand_req * 1000) if cand_req is not None else None,
        "unpriced_pairs": unpriced,
        "requests_seen": requests_seen,
        "observed_span_s": span_s,
        "monthly_volume": monthly,
        "shadow_spend_usd": _usd(
            sum(
                ((p.candidate.cost if p.direction == "forward" else p.primary.cost) for p in pairs),
                Decimal(0),
            )
        ),
    }
    cost["paired_difference_per_1k_usd"] = _paired_cost(
        [p for p in quality if p.primary.priced and p.candidate.priced]
    )
    if prim_req is not None and cand_req is not None:
        saving = (prim_req - cand_req) * Decimal(repr(monthly))
        cost["saving_per_1k_usd"] = _usd((prim_req - cand_req) * 1000)
        cost["projected_monthly_saving_usd"] = _usd(saving)
        cost["cost_ratio"] = float(cand_req / prim_req) if prim_req else None
    else:
        cost["saving_per_1k_usd"] = None
        cost["projected_monthly_saving_usd"] = None
        cost["cost_ratio"] = None
    out: dict[str, Any] = {
        "counts": counts,
        "comparators": comps,
        "latency": {"total": _latency_block(quality, "latency_s"), "ttft": _latency_block(quality, "ttft_s")},
        "errors": {
            "candidate_error_rate": _iv(cand_err),
            "primary_error_rate": _iv(prim_err),
            "candidate_errors_by_type": dict(
                Counter(p.candidate.error or "unknown" for p in sent if not p.candidate.ok)
            ),
        },
        "cost": cost,
    }
    if with_series:
        out["series"] = _series(pairs, kinds)
        out["latency_histogram"] = {
            "total": _hist(
                [p.primary.latency_s for p in quality if p.primary.latency_s],
                [p.candidate.latency_s for p in quality if p.candidate.latency_s],
            ),
            "ttft": _hist(
                [p.primary.ttft_s for p in quality if p.primary.ttft_s],
                [p.candidate.ttft_s for p in quality if p.candidate.ttft_s],
            ),
        }
    if promote_when is not None:
        if promote_when.window_s is not None:
            recent = [p for p in pairs if p.ts >= now - promote_when.window_s]
            sub = (
                summarize(recent, seen, shadow, promote_when, now, with_series=False)
                if len(recent) != len(pairs)
                else out
            )
            out["verdict"] = verdict(recent, kinds, promote_when, sub["cost"]["cost_ratio"])
        else:
            out["verdict"] = verdict(pairs, kinds, promote_when, cost["cost_ratio"])
    else:
        out["verdict"] = {
            "verdict": INSUFFICIENT,
            "failing": [],
            "pairs_needed": None,
            "criteria": [],
            "note": "no promote_when criteria configured for this route",
        }
    return out


def route_report(
    info: RouteInfo,
    pairs: Sequence[PairRecord],
    seen: Sequence[tuple[str | None, int, int]],
    now: float,
    by_task: bool = True,
    humans: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """One route's entry: the whole route, then each task (same shape, each with its own verdict)."""
    entry: dict[str, Any] = {
        "route": info.route,
        "candidate": info.shadow.model if info.shadow is not None else None,
        "baseline": info.baseline,
        "configured": info.shadow is not None,
        "sample_rate": info.shadow.sample_rate if info.shadow is not None else None,
        "promote_when": info.promote_when.model_dump(mode="json") if info.promote_when is not None else None,
    }
    entry.update(summarize(pairs, seen, info.shadow, info.promote_when, now, humans=humans))
    if by_task:
        tasks: dict[str | None, list[PairRecord]] = defaultdict(list)
        for p in pairs:
            tasks[p.task].append(p)
        entry["tasks"] = [
            {
                "task": t,
                **summarize(
                    ps,
                    [s for s in seen if s[0] == t],
                    info.shadow,
                    info.promote_when,
                    now,
                    with_series=False,
                    humans=humans,
                ),
            }
            for t, ps in sorted(tasks.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ]
    return entry


def outcome_counts(pairs: Iterable[PairRecord]) -> dict[str, int]:
    c = Counter(p.outcome for p in pairs)
    return {o: c.get(o, 0) for o in (PAIRED, CANDIDATE_FAILED, PRIMARY_FAILED, DROPPED)}
