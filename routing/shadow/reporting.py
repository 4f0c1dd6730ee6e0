"""Building the report from the store (async I/O, then the pure statistics in a worker thread), and publishing
its headline numbers as Prometheus gauges."""

from __future__ import annotations

import asyncio
import math
import time
from decimal import Decimal
from typing import Any

from accounting.metrics import Metrics
from routing.policy import Policy
from routing.shadow.report import RouteInfo, route_report
from routing.shadow.store import PairStore
from routing.shadow.verdict import JUDGE_UNRELIABLE, VERDICTS

DEFAULT_WINDOW_S = 7 * 86400.0
"""Without ``from``, the report covers the last 7 days."""


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
) -> dict[str, Any]:
    now = time.time() if now is None else now
    until_ = until if until is not None else now
    since_ = since if since is not None else until_ - DEFAULT_WINDOW_S
    await store.flush()
    infos = route_infos(policy)
    names = set(infos) | set(await store.routes())
    if route is not None:
        names &= {route}
    entries: list[tuple[RouteInfo, list[Any], list[tuple[str | None, int, int]]]] = []
    for name in sorted(names):
        info = infos.get(name) or RouteInfo(name, None, None, [])
        pairs = await store.pairs(name, since_, until_)
        seen = await store.seen(name, since_, until_)
        if task is not None:
            pairs = [p for p in pairs if p.task == task]
            seen = [s for s in seen if s[0] == task]
        entries.append((info, pairs, seen))

    def compute() -> list[dict[str, Any]]:
        return [route_report(info, pairs, seen, now, by_task) for info, pairs, seen in entries]

    routes = await asyncio.to_thread(compute)
    for r in routes:
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
    """Latency ratio, projected saving and verdict per route (``pointsman_shadow_*`` gauges)."""
    lb = metrics.labels
    for r in report["routes"]:
        route = lb.route(r["route"])
        ratio = r["latency"]["total"].get("p50_ratio")
        if ratio is not None and not math.isnan(ratio):
            metrics.shadow_latency_ratio.labels(route).set(ratio)
        saving = r["cost"].get("projected_monthly_saving_usd")
        if saving is not None:
            metrics.shadow_projected_saving.labels(route).set(float(Decimal(saving)))
        current = r["verdict"]["verdict"]
        # judge_unreliable is a possible state only where a criterion relies on a judge
        for v in (
            VERDICTS if r["verdict"].get("judges") else tuple(x for x in VERDICTS if x != JUDGE_UNRELIABLE)
        ):
            metrics.shadow_verdict.labels(route, v).set(1 if v == current else 0)
