"""Promotion: ramp a route's traffic onto its shadow candidate in steps, guarded, with automatic rollback.

``start`` snapshots the route's targets (the baseline), then moves the candidate's share through
``shadow.promotion.steps`` (e.g. 5 -> 25 -> 50 -> 100 percent). Each step is a policy change made through the
routing policy store (``RouteEditor``), so it is versioned and listed in the route history like any admin
change, and in force on every replica. While ramping, requests the candidate serves are shadowed in reverse to
the baseline at ``reverse_sample_rate``, so quality stays measured; after completion that reverse shadow goes
on.

A step advances once the candidate served ``guards.min_requests`` at it and either ``dwell_s`` passed or
``dwell_requests`` were served. Guards are evaluated every ``check_interval_s`` over the current step's live
traffic: candidate error rate, its p95 latency (absolute, or relative to the baseline's at the same step), and
comparator means on the step's reverse-shadow pairs. A tripped guard restores the snapshot targets (a policy
change recorded with its reason) and ends the promotion as ``rolled_back``.

Every replica runs the controller loop (to keep the request path's view of promotions current); only the
holder of the ``promotion`` lease in the pair store evaluates and changes anything.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, Protocol

from accounting.metrics import Metrics
from routing.policy import Policy
from routing.shadow.config import REPORT_MAX_PAIRS, GuardConfig, PromotionConfig, ShadowConfig
from routing.shadow.hub import ShadowHub
from routing.shadow.record import PAIRED
from routing.shadow.reporting import build_report, publish_gauges
from routing.shadow.stats import percentile
from routing.shadow.ticket import ActivePromotion

log = logging.getLogger("pointsman.shadow.promotion")

RAMPING, COMPLETED, ROLLED_BACK = "ramping", "completed", "rolled_back"
RouteMutation = Callable[[dict[str, Any]], None]


class PromotionError(Exception):
    """A promotion request that cannot be honoured; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail or {}


class RouteEditor(Protocol):
    async def update_route(self, name: str, mutate: RouteMutation, summary: str) -> int:
        """Apply ``mutate`` to the stored route ``name`` as a new policy version (history records ``summary``);
        returns the version number."""


def ramp_targets(original: list[dict[str, Any]], candidate: str, percent: float) -> list[dict[str, Any]]:
    """Targets giving ``candidate`` ``percent`` of traffic and the original targets the rest, pro rata."""
    base = [t for t in original if t.get("model") != candidate]
    if percent >= 100 or not base:
        return [{"model": candidate, "weight": 100.0}]
    total = sum(float(t.get("weight", 1.0)) for t in base) or 1.0
    out = [{**t, "weight": round(float(t.get("weight", 1.0)) / total * (100.0 - percent), 6)} for t in base]
    out.append({"model": candidate, "weight": float(percent)})
    return out


READ_COST_FACTOR = 20.0
"""The controller's periodic reads (the gauges' report, a ramp's guard readings) wait at least this many times as
long as their last read took before the next: at most ~5% of the leader's time goes to each, however many pairs
and requests a busy route stores."""


class PromotionController:
    def __init__(
        self,
        hub: ShadowHub,
        policy_of: Callable[[], Policy],
        editor: RouteEditor | None,
        metrics: Metrics | None = None,
        gauge_interval_s: float = 30.0,
    ) -> None:
        self.hub = hub
        self.store = hub.store
        self.policy_of = policy_of
        self.editor = editor
        self.metrics = metrics
        self.gauge_interval_s = gauge_interval_s
        self.gauge_wait_s = gauge_interval_s
        """Time between two gauge refreshes: ``gauge_interval_s``, or ``READ_COST_FACTOR`` times what the last
        refresh took when that is longer (a report over many routes' pairs never takes over a core)."""
        self.owner = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last_gauges = 0.0
        self._tick_failing = False
        self._score_reads: dict[str, StepScores] = {}
        self._traffic_reads: dict[str, StepTraffic] = {}
        self.leader = False

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("promotion: could not load promotion state")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="pointsman-shadow-promotion")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            interval = 1.0
            try:
                docs = await self.refresh()
                ramping = [d for d in docs if d.get("status") == RAMPING]
                if ramping:
                    interval = min(float(d["config"].get("check_interval_s", 1.0)) for d in ramping)
                gauges_due = (
                    self.metrics is not None and time.monotonic() - self._last_gauges >= self.gauge_wait_s
                )
                if ramping or gauges_due:  # idle replicas do not touch the lease
                    self.leader = await self.store.try_lease(
                        "promotion", self.owner, max(5.0, 3 * interval, 2 * self.gauge_wait_s)
                    )
                if self.leader:
                    for d in ramping:
                        await self.evaluate(d["route"])
                    if gauges_due:
                        self._last_gauges = began = time.monotonic()
                        await self.publish_gauges()
                        took = time.monotonic() - began
                        self.gauge_wait_s = max(self.gauge_interval_s, READ_COST_FACTOR * took)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._tick_failing:  # once per failure streak (e.g. Redis down), not every second
                    log.exception("promotion: controller tick failed (retrying every %g s)", interval)
                else:
                    log.debug("promotion: controller tick failed again: %s", exc)
                self._tick_failing = True
            else:
                if self._tick_failing:
                    log.info("promotion: controller ticks again")
                self._tick_failing = False
            await asyncio.sleep(interval)

    async def refresh(self) -> list[dict[str, Any]]:
        """Reload promotion states and install the request path's view of them."""
        docs = await self.store.promotions()
        self.hub.promotions = {
            d["route"]: _active(d) for d in docs if d.get("status") in (RAMPING, COMPLETED)
        }
        return docs

    async def publish_gauges(self) -> dict[str, Any]:
        report = await build_report(self.store, self.policy_of(), by_task=False)
        if self.metrics is not None:
            publish_gauges(self.metrics, report)
        return report

    async def _step_traffic(self, route: str, since: float, interval: float) -> StepTraffic:
        """The step's live requests (observations) for the error and latency guards and the dwell: read again
        only every ``check_interval_s`` or ``READ_COST_FACTOR`` times as long as the last read took, whichever is
        longer (a busy route's step holds a row per request)."""
        read = self._traffic_reads.get(route)
        now = time.monotonic()
        if read is not None and read.step_started_at == since and now < read.due:
            return read
        obs = await self.store.observations(route, since)
        cand = [o for o in obs if o.role == "candidate"]
        lat = sorted(o.latency_s for o in cand if o.ok)
        blat = sorted(o.latency_s for o in obs if o.role == "baseline" and o.ok)
        took = time.monotonic() - now
        read = StepTraffic(
            since,
            now + max(interval, READ_COST_FACTOR * took),
            candidate=len(cand),
            baseline=len(obs) - len(cand),
            failed=sum(1 for o in cand if not o.ok),
            answered=len(lat),
            p95=percentile(lat, 95) if lat else math.nan,
            baseline_answered=len(blat),
            baseline_p95=percentile(blat, 95) if blat else math.nan,
        )
        self._traffic_reads[route] = read
        return read

    async def _step_scores(self, route: str, since: float, g: GuardConfig, interval: float) -> StepScores:
        """The step's reverse-shadow pairs' mean scores, for the ``min_scores`` guards: at most the route's
        ``report_max_pairs`` latest pairs of the step are read, and read again only every ``check_interval_s`` or
        ``READ_COST_FACTOR`` times as long as the last read took, whichever is longer (a busy route's step holds
        many pairs)."""
        read = self._score_reads.get(route)
        now = time.monotonic()
        if read is not None and read.step_started_at == since and now < read.due:
            return read
        rule = self.policy_of().by_name.get(route)
        shadow = rule.cfg.shadow if rule is not None else None
        cap = shadow.report_max_pairs if shadow is not None else REPORT_MAX_PAIRS
        pairs = [
            p
            for p in await self.store.pairs(route, since, None, limit=cap)
            if p.direction == "reverse" and p.outcome == PAIRED
        ]
        means: dict[str, tuple[float, int]] = {}
        for name in g.min_scores:
            vals = [p.scores[name] for p in pairs if name in p.scores]
            if vals:
                means[name] = (math.fsum(vals) / len(vals), len(vals))
        took = time.monotonic() - now
        read = StepScores(since, now + max(interval, READ_COST_FACTOR * took), len(pairs), means)
        self._score_reads[route] = read
        return read

    # -- operations -----------------------------------------------------------------------------------------
    def _shadow_cfg(self, route: str) -> tuple[ShadowConfig, list[dict[str, Any]]]:
        rule = self.policy_of().by_name.get(route)
        if rule is None:
            raise PromotionError(404, f"There is no route {route!r}.")
        cfg = rule.cfg.shadow
        if cfg is None:
            raise PromotionError(409, f"Route {route!r} has no shadow test to promote.")
        targets = [t.model_dump(mode="json") for t in rule.cfg.targets]
        if not targets:
            raise PromotionError(
                409, f"Route {route!r} has no targets to ramp (it serves the requested model)."
            )
        return cfg, targets

    async def start_promotion(
        self, route: str, force: bool = False, overrides: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if self.editor is None:
            raise PromotionError(503, "Promotion needs the routing policy store, which is not available.")
        async with self._lock:
            cfg, targets = self._shadow_cfg(route)
            current = await self.store.get_promotion(route)
            if current is not None and current.get("status") == RAMPING:
                raise PromotionError(
                    409,
                    f"Route {route!r} is already being promoted (step {current['step'] + 1}).",
                    {"promotion": current},
                )
            pcfg = cfg.promotion
            if overrides:
                pcfg = PromotionConfig.model_validate({**pcfg.model_dump(), **overrides})
            report = await build_report(self.store, self.policy_of(), route=route, by_task=False)
            entry = report["routes"][0] if report["routes"] else None
            verdict = entry["verdict"] if entry is not None else {"verdict": "insufficient_data"}
            if pcfg.require_ready and not force and verdict.get("verdict") != "ready":
                raise PromotionError(
                    409,
                    f"The shadow verdict for route {route!r} is {verdict.get('verdict')}, "
                    "not ready (send force=true to promote anyway).",
                    {"verdict": verdict},
                )
            baseline = [t["model"] for t in targets if t["model"] != cfg.model]
            if not baseline:
                raise PromotionError(409, f"Route {route!r} already sends everything to {cfg.model!r}.")
            heaviest = max(
                (t for t in targets if t["model"] != cfg.model), key=lambda t: float(t.get("weight", 1.0))
            )
            now = time.time()
            doc: dict[str, Any] = {
                "route": route,
                "candidate": cfg.model,
                "baseline": baseline,
                "baseline_model": heaviest["model"],
                "original_targets": targets,
                "steps": list(pcfg.steps),
                "step": -1,
                "status": RAMPING,
                "started_at": now,
                "step_started_at": now,
                "config": pcfg.model_dump(mode="json"),
                "forced": bool(force and verdict.get("verdict") != "ready"),
                "verdict_at_start": verdict.get("verdict"),
                "policy_versions": [],
                "reason": None,
            }
            await self.store.add_event(
                route,
                {
                    "ts": now,
                    "event": "start",
                    "candidate": cfg.model,
                    "baseline": baseline,
                    "verdict": verdict.get("verdict"),
                    "forced": doc["forced"],
                },
            )
            try:
                await self._apply_step(doc, 0)
            except Exception as exc:
                await self.store.add_event(
                    route, {"ts": time.time(), "event": "start_failed", "reason": str(exc)}
                )
                raise
            return doc

    async def rollback(self, route: str, reason: str, guards: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.editor is None:
            raise PromotionError(503, "Promotion needs the routing policy store, which is not available.")
        async with self._lock:
            doc = await self.store.get_promotion(route)
            if doc is None or doc.get("status") not in (RAMPING, COMPLETED):
                raise PromotionError(409, f"Route {route!r} has no promotion to roll back.")
            return await self._rollback(doc, reason, guards)

    async def status(self, route: str) -> dict[str, Any]:
        return {
            "route": route,
            "promotion": await self.store.get_promotion(route),
            "events": await self.store.events(route),
        }

    # -- the ramp -------------------------------------------------------------------------------------------
    async def _apply_step(self, doc: dict[str, Any], step: int) -> None:
        assert self.editor is not None
        route = doc["route"]
        steps = doc["steps"]
        pct = steps[step]
        targets = ramp_targets(doc["original_targets"], doc["candidate"], pct)

        def mutate(r: dict[str, Any]) -> None:
            r["targets"] = targets

        summary = (
            f"shadow promotion of route {route}: step {step + 1}/{len(steps)}, {doc['candidate']} at {pct:g}%"
        )
        version = await self.editor.update_route(route, mutate, summary)
        now = time.time()
        doc["step"], doc["step_started_at"] = step, now
        doc["policy_versions"].append(version)
        await self.store.put_promotion(route, doc)
        await self.store.add_event(
            route,
            {
                "ts": now,
                "event": "step",
                "step": step,
                "percent": pct,
                "policy_version": version,
                "targets": targets,
            },
        )
        self.hub.promotions[route] = _active(doc)
        log.info("%s (policy version %d)", summary, version)

    async def _rollback(
        self, doc: dict[str, Any], reason: str, guards: dict[str, Any] | None
    ) -> dict[str, Any]:
        assert self.editor is not None
        route = doc["route"]
        original = doc["original_targets"]

        def mutate(r: dict[str, Any]) -> None:
            r["targets"] = original

        summary = f"shadow promotion of route {route} rolled back: {reason}"
        version = await self.editor.update_route(route, mutate, summary)
        now = time.time()
        doc["status"], doc["reason"], doc["ended_at"] = ROLLED_BACK, reason, now
        doc["policy_versions"].append(version)
        await self.store.put_promotion(route, doc)
        await self.store.add_event(
            route,
            {
                "ts": now,
                "event": "rollback",
                "step": doc["step"],
                "reason": reason,
                "policy_version": version,
                "guards": guards or {},
            },
        )
        self.hub.promotions.pop(route, None)
        log.warning("%s (policy version %d)", summary, version)
        return doc

    async def evaluate(self, route: str) -> dict[str, Any] | None:
        """One guard/dwell check of a ramping promotion (the lease holder calls this every tick)."""
        async with self._lock:
            doc = await self.store.get_promotion(route)
            if doc is None or doc.get("status") != RAMPING:
                return doc
            await self.hub.store.flush()
            pcfg = PromotionConfig.model_validate(doc["config"])
            g = pcfg.guards
            since = float(doc["step_started_at"])
            t = await self._step_traffic(route, since, pcfg.check_interval_s)
            n = t.candidate
            stats: dict[str, Any] = {"candidate_requests": n, "baseline_requests": t.baseline}
            trips: list[str] = []
            if n >= g.min_requests:
                err = t.failed / n
                stats["candidate_error_rate"] = err
                p95 = t.p95
                stats["candidate_p95_latency_s"] = p95
                if g.max_error_rate is not None and err > g.max_error_rate:
                    trips.append(f"candidate error rate {err:.3f} > {g.max_error_rate:g}")
                if g.max_p95_latency_s is not None and t.answered and p95 > g.max_p95_latency_s:
                    trips.append(f"candidate p95 latency {p95:.3f}s > {g.max_p95_latency_s:g}s")
                if (
                    g.max_p95_latency_ratio is not None
                    and t.answered
                    and t.baseline_answered >= g.min_requests
                ):
                    ratio = p95 / t.baseline_p95
                    stats["p95_latency_ratio"] = ratio
                    if ratio > g.max_p95_latency_ratio:
                        trips.append(
                            f"candidate/baseline p95 latency {ratio:.2f} > {g.max_p95_latency_ratio:g}"
                        )
            scored = True
            if g.min_scores:
                read = await self._step_scores(route, since, g, pcfg.check_interval_s)
                stats["reverse_pairs"] = read.reverse_pairs
                # a step never advances past an unjudged score guard
                scored = read.reverse_pairs >= g.min_pairs
                if scored:
                    for name, lo in g.min_scores.items():
                        found = read.means.get(name)
                        if found is not None and found[1] >= g.min_pairs:
                            mean = found[0]
                            stats[f"score:{name}"] = mean
                            if mean < lo:
                                trips.append(f"{name} {mean:.3f} < {lo:g}")
            if trips:
                return await self._rollback(doc, "; ".join(trips), stats)
            dwell_ok = (pcfg.dwell_s is not None and time.time() - since >= pcfg.dwell_s) or (
                pcfg.dwell_requests is not None and n >= pcfg.dwell_requests
            )
            if n >= g.min_requests and dwell_ok and scored:
                step = int(doc["step"])
                if step + 1 < len(doc["steps"]):
                    await self._apply_step(doc, step + 1)
                else:
                    now = time.time()
                    doc["status"], doc["ended_at"] = COMPLETED, now
                    await self.store.put_promotion(route, doc)
                    await self.store.add_event(
                        route, {"ts": now, "event": "complete", "step": step, "guards": stats}
                    )
                    self.hub.promotions[route] = _active(doc)
                    log.info("shadow promotion of route %s completed", route)
            return doc


class StepTraffic:
    """The guards' reading of a step's live requests (observations)."""

    __slots__ = (
        "step_started_at",
        "due",
        "candidate",
        "baseline",
        "failed",
        "answered",
        "p95",
        "baseline_answered",
        "baseline_p95",
    )

    step_started_at: Final[float]
    due: Final[float]
    """When it is read again (``time.monotonic()``)."""
    candidate: Final[int]
    """Requests the candidate served."""
    baseline: Final[int]
    failed: Final[int]
    """Of the candidate's, those that failed."""
    answered: Final[int]
    p95: Final[float]
    """The candidate's p95 latency over its answered requests (NaN: none)."""
    baseline_answered: Final[int]
    baseline_p95: Final[float]

    def __init__(
        self,
        step_started_at: float,
        due: float,
        candidate: int,
        baseline: int,
        failed: int,
        answered: int,
        p95: float,
        baseline_answered: int,
        baseline_p95: float,
    ) -> None:
        self.step_started_at = step_started_at
        self.due = due
        self.candidate = candidate
        self.baseline = baseline
        self.failed = failed
        self.answered = answered
        self.p95 = p95
        self.baseline_answered = baseline_answered
        self.baseline_p95 = baseline_p95


class StepScores:
    """The score guards' reading of a step's reverse-shadow pairs."""

    __slots__ = ("step_started_at", "due", "reverse_pairs", "means")

    step_started_at: Final[float]
    due: Final[float]
    """When it is read again (``time.monotonic()``)."""
    reverse_pairs: Final[int]
    means: Final[dict[str, tuple[float, int]]]
    """Comparator -> (mean score, pairs scored)."""

    def __init__(
        self, step_started_at: float, due: float, reverse_pairs: int, means: dict[str, tuple[float, int]]
    ) -> None:
        self.step_started_at = step_started_at
        self.due = due
        self.reverse_pairs = reverse_pairs
        self.means = means


def _active(doc: dict[str, Any]) -> ActivePromotion:
    return ActivePromotion(
        candidate=doc["candidate"],
        baseline=doc["baseline_model"],
        reverse_rate=float(doc["config"].get("reverse_sample_rate", 0.05)),
        ramping=doc.get("status") == RAMPING,
    )
