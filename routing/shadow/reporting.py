"""Building the report from the store (async I/O, then the pure statistics in a worker thread), and publishing
its headline numbers as Prometheus gauges."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from accounting.metrics import Metrics
from routing.policy import Policy
from routing.shadow.config import REPORT_MAX_PAIRS
from routing.shadow.report import RouteInfo, human_metrics, route_report
from routing.shadow.store import PairStore
from routing.shadow.verdict import JUDGE_UNRELIABLE, VERDICTS

DEFAULT_WINDOW_S = 7 * 86400.0
"""Without ``from``, the report covers the last 7 days."""


class Rating(Protocol):
    """A feedback value as the capture store keeps it."""

    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float | None: ...


FeedbackLookup = Callable[[Sequence[str]], Mapping[str, Sequence[Rating]]]
"""Request ids -> their feedback, oldest first (``CaptureStore.feedback_for``); called in a worker thread."""


def people(
    lookup: FeedbackLookup, metrics: set[str], request_ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Feedback metric -> request id -> its latest numeric value, for the given metrics."""
    out: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for rid, given in lookup(request_ids).items():
        for fb in given:
            if fb.metric in out and fb.value is not None:
                out[fb.metric][rid] = float(fb.value)
    return out


def route_infos(policy: Policy) -> dict[str, RouteInfo]:
    out: dict[str, RouteInfo] = {}
    for rule in policy.rules:
        cfg = rule.cfg
        if cfg.shadow is None and cfg.promote_when is None:
            continue
        out[rule.name] = RouteInfo(rule.name, cfg.shadow, cfg.promote_when, [t.model for t in cfg.targets])
    return out


async def build_report(
    store: PairStore,
    policy: Policy,
    *,
    route: str | None = None,
    task: str | None = None,
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
    by_task: bool = True,
    promotions: dict[str, dict[str, Any]] | None = None,
    feedback: FeedbackLookup | None = None,
) -> dict[str, Any]:
    """The report; with ``feedback``, judges that name a ``human_metric`` get their agreement with people.

    Each route reads at most its ``shadow.report_max_pairs`` pairs, the latest of the window; a route with more
    has its ``window`` start at the oldest pair read (``capped``: true, with ``pairs_in_window``), and its
    request volume is counted over that shorter window too, so that every figure of the entry covers the same
    span. A ``task`` filter applies to the pairs read."""
    now = time.time() if now is None else now
    until_ = until if until is not None else now
    since_ = since if since is not None else until_ - DEFAULT_WINDOW_S
    await store.flush()
    infos = route_infos(policy)
    names = set(infos) | set(await store.routes())
    if route is not None:
        names &= {route}
    entries: list[tuple[RouteInfo, list[Any], list[tuple[str | None, int, int]]]] = []
    windows: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        info = infos.get(name) or RouteInfo(name, None, None, [])
        cap = info.shadow.report_max_pairs if info.shadow is not None else REPORT_MAX_PAIRS
        pairs = await store.pairs(name, since_, until_, limit=cap)
        in_window = len(pairs)
        if in_window >= cap:
            in_window = max(in_window, await store.count_pairs(name, since_, until_))
        capped = in_window > len(pairs)
        start = pairs[0].ts if capped else since_
        windows[name] = {
            "from": start,
            "to": until_,
            "capped": capped,
            "pairs_analysed": len(pairs),
            "pairs_in_window": in_window,
            "max_pairs": cap,
        }
        seen = await store.seen(name, start, until_)
        if task is not None:
            pairs = [p for p in pairs if p.task == task]
            seen = [s for s in seen if s[0] == task]
        entries.append((info, pairs, seen))

    def compute() -> list[dict[str, Any]]:
        out = []
        for info, pairs, seen in entries:
            metrics = set(human_metrics(info.shadow).values())
            humans = (
                people(feedback, metrics, [p.id for p in pairs]) if feedback is not None and metrics else None
            )
            out.append(route_report(info, pairs, seen, now, by_task, humans))
        return out

    routes = await asyncio.to_thread(compute)
    for r in routes:
        r["window"] = windows[r["route"]]
        promo = (promotions or {}).get(r["route"])
        if promo is not None:
            r["promotion"] = promotion_summary(promo)
    return {
        "generated_at": now,
        "window": {"from": since_, "to": until_},
        "filters": {"route": route, "task": task},
        "routes": routes,
    }


def promotion_summary(doc: dict[str, Any]) -> dict[str, Any]:
    steps = doc.get("steps") or []
    step = int(doc.get("step", 0))
    return {
        "status": doc.get("status"),
        "step": step,
        "steps": steps,
        "percent": steps[step] if 0 <= step < len(steps) else None,
        "candidate": doc.get("candidate"),
        "baseline": doc.get("baseline"),
        "started_at": doc.get("started_at"),
        "step_started_at": doc.get("step_started_at"),
        "reason": doc.get("reason"),
    }


def publish_gauges(metrics: Metrics, report: dict[str, Any]) -> None:
    """Latency ratio, projected saving, verdict, judge reliability, evidence per criterion and pairs still needed
    per route (``pointsman_shadow_*`` gauges)."""
    lb = metrics.labels
    for r in report["routes"]:
        route = lb.route(r["route"])
        ratio = r["latency"]["total"].get("p50_ratio")
        if ratio is not None and not math.isnan(ratio):
            metrics.shadow_latency_ratio.labels(route).set(ratio)
        saving = r["cost"].get("projected_monthly_saving_usd")
        if saving is not None:
            metrics.shadow_projected_saving.labels(route).set(float(Decimal(saving)))
        for name, c in r["comparators"].items():
            j = c.get("judge")
            if j is None:
                continue
            if j["order_consistency"] is not None:
                metrics.shadow_judge_consistency.labels(route, name[:64]).set(j["order_consistency"])
            if j["position_bias"] is not None:
                metrics.shadow_judge_position_bias.labels(route, name[:64]).set(j["position_bias"])
        for crit in r["verdict"].get("criteria", []):
            any_ = crit.get("anytime") or {}
            e, alpha = any_.get("e_value"), any_.get("alpha")
            if e is not None and alpha:
                evidence = max(-10.0, min(10.0, math.log(max(e, 1e-300)) / math.log(1 / alpha)))
                metrics.shadow_evidence.labels(route, crit["name"][:96]).set(evidence)
        needed = r["verdict"].get("pairs_needed")
        metrics.shadow_pairs_needed.labels(route).set(math.nan if needed is None else needed)
        current = r["verdict"]["verdict"]
        # judge_unreliable is a possible state only where a criterion relies on a judge
        for v in (
            VERDICTS if r["verdict"].get("judges") else tuple(x for x in VERDICTS if x != JUDGE_UNRELIABLE)
        ):
            metrics.shadow_verdict.labels(route, v).set(1 if v == current else 0)
