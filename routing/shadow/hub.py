"""The shadow hub: the request path's only entry into shadow testing, and the runner behind it.

``begin`` is called once per routed request, after the routing decision. For a route without ``shadow`` it
returns None after two attribute reads. For a sampled request it starts the shadow call *concurrently* with the
primary (in the same mode, with the same parameters), in a task of its own, and returns a ``Ticket``; the
request path later hands the ticket the primary's output (``primary_body`` / ``primary_events``) and finally its
record (``finish``), neither of which waits for anything. When both sides are done the hub assembles the answers,
runs the comparators and writes exactly one pair record keyed by the request id.

This module holds sampling, the per-route lanes and the run of one shadow; the calls themselves are in
``routing.shadow.candidate``, pair assembly and comparing in ``routing.shadow.pairing``, the daily budget in
``routing.shadow.budget``.

Bounds (per route): ``max_concurrency`` shadow calls in flight, ``queue_size`` waiting (each at most
``max_queue_wait_s``), and the daily budget. Beyond them a shadow is dropped: its pair is still written, with
outcome ``dropped`` and the reason, and counted in ``pointsman_shadow_dropped_total``. Nothing here can raise
into the request path: every entry point catches and logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from accounting.metrics import Metrics
from accounting.record import RequestRecord
from routing.dispatch import Dispatcher
from routing.eligibility import ConsentRequired, Eligibility
from routing.errors import RoutingError
from routing.policy import Decision, Policy
from routing.rules import RouteInput
from routing.shadow.budget import ShadowBudget
from routing.shadow.candidate import SHADOW_KEY, CandidateCalls, ShadowAccounts
from routing.shadow.config import ShadowConfig
from routing.shadow.pairing import Comparing, pair_of, write_pair
from routing.shadow.record import DROPPED, PAIRED, PairRecord, Side
from routing.shadow.store import Observation, PairStore
from routing.shadow.ticket import ActivePromotion, ShadowResult, Ticket, sample_fraction
from wire.json_object import JsonObject
from wire.sse import UNBOUNDED, StreamBounds

__all__ = ["SHADOW_KEY", "ActivePromotion", "ShadowAccounts", "ShadowHub", "Ticket"]

log = logging.getLogger("pointsman.shadow")

_FAILED_OUTCOMES = frozenset({"upstream_error", "timeout", "truncated"})
CONSENT = "consent"
"""Why a shadow was dropped: it would send a team's data to a third party the team has not approved."""


def _unchanged(doc: Any) -> Any:
    return doc


def capture_denied(team: str | None) -> bool:
    """Default team capture approval: nobody (the capture-approval feature installs a real check)."""
    return False


class _Lane:
    """Per-route bounds: calls in flight and a bounded wait queue."""

    __slots__ = ("in_flight", "queue", "comparing")

    def __init__(self) -> None:
        self.in_flight = 0
        self.queue: deque[Ticket] = deque()
        self.comparing = 0


class ShadowHub:
    def __init__(
        self,
        store: PairStore,
        dispatcher: Dispatcher,
        accountant: ShadowAccounts,
        policy_of: Callable[[], Policy],
        default_timeout_s: float,
        metrics: Metrics | None = None,
        bounds: StreamBounds = UNBOUNDED,
    ) -> None:
        self.store = store
        self.policy_of = policy_of
        self.default_timeout_s = default_timeout_s
        self.metrics = metrics
        self.capture_allowed: Callable[[str | None], bool] = capture_denied
        """Hook: may raw prompts/outputs of this team be stored? (team capture approval installs the real one)"""
        self.redact: Callable[[Any], Any] = _unchanged
        """Hook: redaction applied to captured pair text before it is stored (capture installs the real one)."""
        self.promotions: dict[str, ActivePromotion] = {}
        """Route -> promotion state, kept current by the promotion controller."""
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.budget = ShadowBudget(store, self._spawn)
        self.calls = CandidateCalls(dispatcher, accountant, policy_of, self.budget, default_timeout_s, bounds)
        self.comparing = Comparing(self.calls.call_model)
        self._closing = False
        self.stats = {"begun": 0, "sampled": 0, "dropped": 0, "written": 0}

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.start()

    async def close(self, grace_s: float = 5.0) -> None:
        """Let in-flight shadows finish (up to ``grace_s``), then cancel the rest and flush the store."""
        self._closing = True
        for ln in self._lanes.values():  # queued shadows will never start now: their pairs say so
            while ln.queue:
                self._drop(ln.queue.popleft(), "shutdown", count=False)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace_s)
            for t in still:
                t.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        await self.store.close()

    async def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until every started shadow has written its pair and the store has flushed (tests, reports)."""
        deadline = time.monotonic() + timeout_s
        while True:
            pending = [t for t in self._tasks if not t.done()]
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                break
            await asyncio.wait(pending, timeout=left)
        await self.store.flush()

    def lane(self, route: str) -> _Lane:
        ln = self._lanes.get(route)
        if ln is None:
            ln = self._lanes[route] = _Lane()
        return ln

    def queue_depth(self) -> dict[str, dict[str, int]]:
        return {
            r: {"in_flight": ln.in_flight, "queued": len(ln.queue), "comparing": ln.comparing}
            for r, ln in self._lanes.items()
        }

    # -- the request path -------------------------------------------------------------------------------------
    def begin(self, decision: Decision, rec: RequestRecord, endpoint: str, body: JsonObject) -> Ticket | None:
        rule = decision.rule
        if rule is None:
            return None
        cfg: ShadowConfig | None = rule.cfg.shadow
        if cfg is None:
            return None
        try:
            return self._begin(decision, cfg, rec, endpoint, body)
        except Exception:
            log.exception("shadow: could not start a shadow for %s", rec.request_id)
            return None

    def _begin(
        self, decision: Decision, cfg: ShadowConfig, rec: RequestRecord, endpoint: str, body: JsonObject
    ) -> Ticket | None:
        route = decision.route
        self.stats["begun"] += 1
        self.store.add_seen(route, rec.task, rec.ts)
        served = decision.attempts[0]
        promo = self.promotions.get(route)
        if promo is not None and served.name == promo.candidate:
            direction, target_name, rate = "reverse", promo.baseline, promo.reverse_rate
        elif served.name == cfg.model:
            direction, target_name, rate = "forward", None, 0.0  # the candidate itself is being served
        else:
            direction, target_name, rate = "forward", cfg.model, cfg.sample_rate
        observe = promo is not None and promo.ramping
        sampled = target_name is not None and rate > 0 and sample_fraction(route, rec.request_id) < rate
        if not sampled and not observe:
            return None
        shadow_model = self.policy_of().models.resolve(target_name) if sampled and target_name else None
        consent = decision.eligibility.in_house() if decision.eligibility is not None else None
        t = Ticket(
            on_finish=self._primary_finished,
            route=route,
            cfg=cfg,
            rule_timeout_s=decision.timeout_s,
            endpoint=endpoint,
            body=body,
            rec=rec,
            defaults=decision.defaults_for(endpoint),
            served=served,
            shadow_model=shadow_model,
            direction=direction,
            sampled=sampled,
            observe=observe,
            capture=False,
            consent=consent,
        )
        if not sampled:
            return t
        self.stats["sampled"] += 1
        t.capture = cfg.capture and self.capture_allowed(rec.team)
        if consent is not None and self._needs_third_party(t, consent):
            self._drop(t, CONSENT)
            if self.metrics is not None:
                self.metrics.consent(rec.team, "shadow_dropped")
        elif self._closing:
            self._drop(t, "concurrency")
        elif self.budget.over(route, cfg):
            self._drop(t, "budget")
        else:
            self._submit(t)
        return t

    def _needs_third_party(self, t: Ticket, consent: Eligibility) -> bool:
        """Whether this shadow would send the request's data to a third party its team has not approved: the
        shadow model's backend, or a judge or embedding model no in-house route serves."""
        m = t.shadow_model
        if m is not None and consent.reaches_third_party(m):
            return True
        policy = self.policy_of()
        for c in t.cfg.compare:
            model = getattr(c, "model", None)
            if isinstance(model, str):
                try:
                    policy.decide(RouteInput(model, {}, SHADOW_KEY, None), consent)
                except ConsentRequired:
                    return True
                except RoutingError:
                    continue  # not a consent matter: the comparator reports it when it runs
        return False

    def _submit(self, t: Ticket) -> None:
        ln = self.lane(t.route)
        cfg = t.cfg
        if ln.in_flight < cfg.max_concurrency:
            self._start(t, ln)
        elif len(ln.queue) < cfg.queue_size:
            t.state = "queued"
            t.queued_at = time.monotonic()
            ln.queue.append(t)
        else:
            self._drop(t, "queue_full" if cfg.queue_size > 0 else "concurrency")

    def _start(self, t: Ticket, ln: _Lane) -> None:
        ln.in_flight += 1
        t.state = "running"
        task = asyncio.get_running_loop().create_task(self._run(t, ln), name=f"shadow-{t.rec.request_id}")
        t.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pump(self, ln: _Lane) -> None:
        now = time.monotonic()
        while ln.queue and ln.in_flight < (ln.queue[0].cfg.max_concurrency):
            t = ln.queue.popleft()
            if now - t.queued_at > t.cfg.max_queue_wait_s or self._closing:
                self._drop(t, "concurrency")
                continue
            if self.budget.over(t.route, t.cfg):
                self._drop(t, "budget")
                continue
            self._start(t, ln)

    def _drop(self, t: Ticket, reason: str, count: bool = True) -> None:
        t.state = "dropped"
        t.reason = reason
        self.stats["dropped"] += 1
        m = self.metrics
        if m is not None and count:
            try:
                m.shadow_dropped.labels(m.labels.route(t.route), reason).inc()
            except Exception:
                log.exception("shadow: metric update failed")
        if t.finished:  # dropped from the queue after the primary finished
            self._write(pair_of(t, None, self.redact))

    def _primary_finished(self, t: Ticket) -> None:
        if t.observe:
            self._observe(t)
        if not t.sampled:
            return
        if t.state == "dropped":
            self._write(pair_of(t, None, self.redact))
        else:
            t.primary_done.set()

    def _observe(self, t: Ticket) -> None:
        rec = t.rec
        if rec.outcome == "cancelled":
            return
        promo = self.promotions.get(t.route)
        role = "candidate" if promo is not None and t.served.name == promo.candidate else "baseline"
        ok = rec.outcome not in _FAILED_OUTCOMES and rec.fallbacks == 0 and rec.status < 500
        self.store.add_observation(t.route, Observation(rec.ts, role, ok, rec.latency_s))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the shadow side ------------------------------------------------------------------------------------
    async def _run(self, t: Ticket, ln: _Lane) -> None:
        written = False
        try:
            try:
                t.result = await self.calls.call_shadow(t)
            except Exception as exc:  # a bug, not the candidate: still one pair, saying so
                log.exception("shadow: call for %s failed", t.rec.request_id)
                t.result = ShadowResult(
                    Side(
                        model=t.shadow_model.name if t.shadow_model else "",
                        error=f"internal: {type(exc).__name__}",
                    ),
                    None,
                )
            finally:
                ln.in_flight -= 1
                self._pump(ln)
            if not t.primary_done.is_set():  # (no timer when the primary finished first)
                wait_s = (t.rule_timeout_s or self.default_timeout_s) + 60.0
                try:
                    async with asyncio.timeout(wait_s):  # (no task of its own, as ``wait_for`` makes)
                        await t.primary_done.wait()
                except TimeoutError:
                    log.error(
                        "shadow: primary of %s never finished; recording it as failed", t.rec.request_id
                    )
                    t.rec.outcome = "upstream_error"
                    t.rec.error_type = "unfinished"
            ln.comparing += 1
            try:
                pair = pair_of(t, t.result, self.redact)
                if pair.outcome == PAIRED and t.result.output is not None:
                    try:
                        await self.comparing.compare(t, pair, ln.comparing)
                    except Exception as exc:
                        log.exception("shadow: comparing pair %s failed", t.rec.request_id)
                        pair.errors["*"] = f"internal: {type(exc).__name__}"
                self._write(pair)
                written = True
            finally:
                ln.comparing -= 1
        except asyncio.CancelledError:
            if not written:
                if t.result is None:
                    t.result = ShadowResult(Side(error="shutdown"), None)
                pair = pair_of(t, t.result, self.redact)
                pair.outcome, pair.reason = DROPPED, "shutdown"
                self._write(pair)
            raise
        except Exception:
            log.exception("shadow: pair %s failed", t.rec.request_id)
            if not written:
                self._write(
                    PairRecord(
                        id=t.rec.request_id,
                        ts=t.rec.ts,
                        route=t.route,
                        task=t.rec.task,
                        team=t.rec.team,
                        key=t.rec.key,
                        endpoint=t.endpoint,
                        stream=t.rec.stream,
                        direction=t.direction,
                        outcome=DROPPED,
                        reason="internal_error",
                    )
                )

    # -- writing ------------------------------------------------------------------------------------------
    def _write(self, pair: PairRecord) -> None:
        self.stats["written"] += 1
        write_pair(self.store, self.metrics, pair)
