"""The shadow hub: the request path's only entry into shadow testing, and the runner behind it.

``begin`` is called once per routed request, after the routing decision. For a route without ``shadow`` it
returns None after two attribute reads. For a sampled request it starts the shadow call *concurrently* with the
primary (in the same mode, with the same parameters), in a task of its own, and returns a ``Ticket``; the
request path later hands the ticket the primary's output (``primary_body`` / ``primary_events``) and finally its
record (``finish``), neither of which waits for anything. When both sides are done the hub assembles the answers,
runs the comparators and writes exactly one pair record keyed by the request id.

Bounds (per route): ``max_concurrency`` shadow calls in flight, ``queue_size`` waiting (each at most
``max_queue_wait_s``), and the daily budget. Beyond them a shadow is dropped: its pair is still written, with
outcome ``dropped`` and the reason, and counted in ``pointsman_shadow_dropped_total``. Nothing here can raise
into the request path: every entry point catches and logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import orjson

from accounting.ledger import day_bucket, to_nusd
from accounting.metrics import Metrics
from accounting.record import RequestRecord
from routing.dispatch import Dispatcher
from routing.errors import RoutingError
from routing.models import ResolvedModel
from routing.policy import Decision, Policy, RouteInput
from routing.shadow import comparators as cmp
from routing.shadow.config import ShadowConfig
from routing.shadow.extract import Output, from_body, from_events
from routing.shadow.record import (
    CANDIDATE_FAILED,
    DROPPED,
    PAIRED,
    PRIMARY_FAILED,
    PairRecord,
    Side,
)
from routing.shadow.store import Observation, PairStore
from routing.upstream_call import CallSpec, build_call
from serving.errors import UpstreamConnectError, UpstreamError, UpstreamHTTPError
from wire.sse import SSEReader
from wire.usage import Usage, usage_from_response

log = logging.getLogger("pointsman.shadow")

_FAILED_OUTCOMES = frozenset({"upstream_error", "timeout"})
SHADOW_KEY = "pointsman-shadow"
"""Key name on records of judge/embedding calls made by comparators."""


def _unchanged(doc: Any) -> Any:
    return doc


def capture_denied(team: str | None) -> bool:
    """Default team capture approval: nobody (the capture-approval feature installs a real check)."""
    return False


def sample_fraction(route: str, request_id: str) -> float:
    """A uniform number in [0, 1) from the request id: the same request is always sampled the same way."""
    d = hashlib.blake2b(f"{route}\x00{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(d, "big") / 2**64


@dataclass(slots=True)
class ActivePromotion:
    """What the request path needs to know about a promotion in progress (or completed) on a route."""

    candidate: str
    baseline: str
    """The baseline model reverse shadows go to."""
    reverse_rate: float
    ramping: bool


@dataclass(slots=True)
class ShadowResult:
    side: Side
    output: Output | None
    record: RequestRecord | None = None
    """The shadow call's accounting record (its cost is final once the accountant priced it)."""


@dataclass(eq=False)
class Ticket:
    hub: ShadowHub
    route: str
    cfg: ShadowConfig
    rule_timeout_s: float | None
    endpoint: str
    doc: dict[str, Any]
    rec: RequestRecord
    defaults: Mapping[str, Any]
    served: ResolvedModel
    shadow_model: ResolvedModel | None
    direction: str
    sampled: bool
    observe: bool
    capture: bool
    state: str = "new"
    """new, queued, running, dropped."""
    reason: str | None = None
    queued_at: float = 0.0
    primary_parsed: Any = None
    primary_stream: Sequence[bytes] | None = None
    finished: bool = False
    primary_done: asyncio.Event = field(default_factory=asyncio.Event)
    result: ShadowResult | None = None
    primary_out: Output | None = None
    candidate_out: Output | None = None
    task: asyncio.Task[None] | None = None

    # -- called from the request path (never raise, never wait) ----------------------------------------------
    def primary_body(self, parsed: Any) -> None:
        self.primary_parsed = parsed

    def primary_events(self, events: Sequence[bytes]) -> None:
        self.primary_stream = events

    def finish(self, rec: RequestRecord) -> None:
        """The primary is done (served, failed or cancelled); ``rec`` is its final record."""
        if self.finished:
            return
        self.finished = True
        try:
            self.rec = rec
            self.hub._primary_finished(self)
        except Exception:
            log.exception("shadow: finishing pair %s failed", rec.request_id)


class ShadowAccounts(Protocol):
    """How shadow and comparator calls are accounted (``accounting.accountant.Accountant``)."""

    def price(self, rec: RequestRecord) -> Decimal: ...

    def finish(self, rec: RequestRecord, request_body: dict[str, Any] | None = None,
               output_events: Sequence[bytes] | None = None) -> None: ...


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
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.accountant = accountant
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
        self._spent: dict[tuple[str, str], int] = {}
        self._spent_synced: dict[tuple[str, str], float] = {}
        self._comparators: dict[int, tuple[ShadowConfig, list[cmp.Comparator]]] = {}
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
        return {r: {"in_flight": ln.in_flight, "queued": len(ln.queue), "comparing": ln.comparing}
                for r, ln in self._lanes.items()}

    # -- the request path -------------------------------------------------------------------------------------
    def begin(self, decision: Decision, rec: RequestRecord, endpoint: str, doc: dict[str, Any]) -> Ticket | None:
        rule = decision.rule
        if rule is None:
            return None
        cfg: ShadowConfig | None = rule.cfg.shadow
        if cfg is None:
            return None
        try:
            return self._begin(decision, cfg, rec, endpoint, doc)
        except Exception:
            log.exception("shadow: could not start a shadow for %s", rec.request_id)
            return None

    def _begin(self, decision: Decision, cfg: ShadowConfig, rec: RequestRecord, endpoint: str,
               doc: dict[str, Any]) -> Ticket | None:
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
        t = Ticket(
            hub=self, route=route, cfg=cfg, rule_timeout_s=decision.timeout_s, endpoint=endpoint, doc=doc, rec=rec,
            defaults=decision.defaults, served=served, shadow_model=shadow_model, direction=direction,
            sampled=sampled, observe=observe, capture=False,
        )
        if not sampled:
            return t
        self.stats["sampled"] += 1
        t.capture = cfg.capture and self.capture_allowed(rec.team)
        if self._closing:
            self._drop(t, "concurrency")
        elif self._over_budget(route, cfg):
            self._drop(t, "budget")
        else:
            self._submit(t)
        return t

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
            if self._over_budget(t.route, t.cfg):
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
            self._write(self._pair_of(t, None))

    def _primary_finished(self, t: Ticket) -> None:
        if t.observe:
            self._observe(t)
        if not t.sampled:
            return
        if t.state == "dropped":
            self._write(self._pair_of(t, None))
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

    # -- budget ---------------------------------------------------------------------------------------------
    def _over_budget(self, route: str, cfg: ShadowConfig) -> bool:
        if cfg.budget_usd_per_day is None:
            return False
        day = day_bucket(time.time())
        k = (route, day)
        if time.monotonic() - self._spent_synced.get(k, 0.0) > 2.0:
            self._spent_synced[k] = time.monotonic()
            self._spawn(self._sync_spend(route, day))
        return self._spent.get(k, 0) >= to_nusd(cfg.budget_usd_per_day)

    async def _sync_spend(self, route: str, day: str) -> None:
        await self.store.flush()
        total = await self.store.spend(route, day)
        k = (route, day)
        self._spent[k] = max(self._spent.get(k, 0), total)

    def _add_spend(self, route: str, cost: Decimal) -> None:
        n = to_nusd(cost)
        if n <= 0:
            return
        k = (route, day_bucket(time.time()))
        self._spent[k] = self._spent.get(k, 0) + n
        self.store.add_spend(route, k[1], n)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the shadow side ------------------------------------------------------------------------------------
    async def _run(self, t: Ticket, ln: _Lane) -> None:
        written = False
        try:
            try:
                t.result = await self._call_shadow(t)
            except Exception as exc:  # a bug, not the candidate: still one pair, saying so
                log.exception("shadow: call for %s failed", t.rec.request_id)
                t.result = ShadowResult(Side(model=t.shadow_model.name if t.shadow_model else "",
                                             error=f"internal: {type(exc).__name__}"), None)
            finally:
                ln.in_flight -= 1
                self._pump(ln)
            wait_s = (t.rule_timeout_s or self.default_timeout_s) + 60.0
            try:
                await asyncio.wait_for(t.primary_done.wait(), wait_s)
            except TimeoutError:
                log.error("shadow: primary of %s never finished; recording it as failed", t.rec.request_id)
                t.rec.outcome = "upstream_error"
                t.rec.error_type = "unfinished"
            ln.comparing += 1
            try:
                pair = self._pair_of(t, t.result)
                if pair.outcome == PAIRED and t.result.output is not None:
                    try:
                        await self._compare(t, pair, ln)
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
                pair = self._pair_of(t, t.result)
                pair.outcome, pair.reason = DROPPED, "shutdown"
                self._write(pair)
            raise
        except Exception:
            log.exception("shadow: pair %s failed", t.rec.request_id)
            if not written:
                self._write(PairRecord(id=t.rec.request_id, ts=t.rec.ts, route=t.route, task=t.rec.task,
                                       team=t.rec.team, key=t.rec.key, endpoint=t.endpoint, stream=t.rec.stream,
                                       direction=t.direction, outcome=DROPPED, reason="internal_error"))

    def _timeout(self, t: Ticket) -> float:
        return t.cfg.timeout_s or t.rule_timeout_s or self.default_timeout_s

    async def _call_shadow(self, t: Ticket) -> ShadowResult:
        target = t.shadow_model
        side = Side(model=t.shadow_model.name if t.shadow_model else "")
        if target is None:
            side.error = "model_not_found"
            return ShadowResult(side, None)
        side.backend, side.upstream_model = target.backend, target.upstream_model
        stream = t.doc.get("stream") is True
        timeout = self._timeout(t)
        rid = f"{t.rec.request_id}:shadow"
        # Straight to the candidate's backend, not through the dispatcher: no fallbacks (a failure is the
        # candidate's), and shadow failures never feed the circuit breakers that route client traffic.
        backend = self.dispatcher.registry.get(target.backend)
        spec = CallSpec(t.endpoint, t.doc, t.defaults, stream, rid)
        call = None if backend is None else build_call(spec, target, backend, timeout)

        srec = RequestRecord(
            request_id=rid, ts=time.time(), key=t.rec.key, team=t.rec.team, task=t.rec.task, route=t.route,
            requested_model=target.name, endpoint=t.endpoint, stream=stream, upstream_model=target.upstream_model,
            backend=target.backend, shadow=True, tags=dict(t.rec.tags),
        )
        output: Output | None = None
        events: list[bytes] | None = None
        raw: bytes | None = None
        usage: Usage | None = None
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(timeout + 1.0):
                if backend is None or call is None:
                    raise UpstreamConnectError(f"backend {target.backend!r} is not available", backend=target.backend)
                srec.self_hosted = backend.info.self_hosted
                if stream:
                    upstream = await backend.open_stream(call)
                    reader = SSEReader(drop_usage=False)
                    events = reader.events
                    try:
                        async for chunk in upstream:
                            if reader.feed(chunk) and side.ttft_s is None:
                                side.ttft_s = time.perf_counter() - t0
                        reader.flush()
                    finally:
                        await upstream.aclose()
                    side.latency_s = time.perf_counter() - t0
                    output, usage = from_events(t.endpoint, events)
                    side.status = 200
                    if output.error:
                        side.error = "stream_error"
                    else:
                        side.ok = True
                else:
                    resp = await backend.call(call)
                    side.latency_s = time.perf_counter() - t0
                    side.status = resp.status
                    raw = resp.body
                    try:
                        parsed = orjson.loads(resp.body)
                    except orjson.JSONDecodeError:
                        parsed = None
                    if isinstance(parsed, dict):
                        output = from_body(t.endpoint, parsed)
                        usage = usage_from_response(parsed)
                        side.ok = resp.status < 400
                        if not side.ok:
                            side.error = "http_4xx" if resp.status < 500 else "http_5xx"
                    else:
                        side.error = "protocol"
        except UpstreamError as exc:
            side.error = exc.error_type
            side.status = exc.status if isinstance(exc, UpstreamHTTPError) else 0
        except RoutingError as exc:
            side.error = exc.code or "routing"
            side.status = exc.status
        except TimeoutError:
            side.error = "timeout"
        if side.latency_s is None:
            side.latency_s = time.perf_counter() - t0
        # account the shadow call (flagged shadow=True; its own spend and budget)
        srec.status = side.status or (504 if side.error == "timeout" else 502)
        srec.outcome = "ok" if side.ok else ("timeout" if side.error == "timeout" else "upstream_error")
        srec.error_type = side.error
        srec.latency_s = side.latency_s
        srec.ttft_s = side.ttft_s if stream else side.latency_s
        if usage is not None:
            srec.usage = usage
            srec.has_usage = True
        body = call.body if call is not None else None
        cost = self._account(srec, body, events if stream else (None if raw is None or srec.has_usage else (raw,)))
        self._add_spend(t.route, cost)
        return ShadowResult(side, output, srec)

    def _account(self, srec: RequestRecord, body: dict[str, Any] | None, events: Sequence[bytes] | None) -> Decimal:
        acc = self.accountant
        try:
            cost = acc.price(srec)
            acc.finish(srec, body, events)
        except Exception:
            log.exception("shadow: accounting failed for %s", srec.request_id)
            return Decimal(0)
        return cost

    # -- pairing --------------------------------------------------------------------------------------------
    def _primary_side(self, t: Ticket) -> tuple[Side, Output | None]:
        rec = t.rec
        side = Side(
            model=t.served.name, backend=rec.backend, upstream_model=rec.upstream_model, status=rec.status,
            latency_s=rec.latency_s, ttft_s=rec.ttft_s if rec.stream else None,
            input_tokens=rec.usage.input_tokens, output_tokens=rec.usage.output_tokens, cost_usd=str(rec.cost_usd),
            fallbacks=rec.fallbacks,
        )
        output: Output | None = None
        if rec.outcome == "cancelled":
            side.error = "cancelled"
        elif rec.status >= 400 or rec.outcome != "ok":
            side.error = rec.error_type or rec.outcome
        elif rec.fallbacks > 0:
            side.error = "fallback"
        else:
            side.ok = True
        if side.ok:
            if t.primary_stream is not None:
                output, _ = from_events(t.endpoint, t.primary_stream)
                if output.error:
                    side.ok, side.error = False, "stream_error"
            elif t.primary_parsed is not None:
                output = from_body(t.endpoint, t.primary_parsed)
        return side, output

    def _pair_of(self, t: Ticket, result: ShadowResult | None) -> PairRecord:
        rec = t.rec
        served, served_out = self._primary_side(t)
        pair = PairRecord(
            id=rec.request_id, ts=rec.ts, route=t.route, task=rec.task, team=rec.team, key=rec.key,
            endpoint=t.endpoint, stream=rec.stream, direction=t.direction,
        )
        shadow_side = result.side if result is not None else Side(model=t.shadow_model.name if t.shadow_model else "")
        if result is not None and result.record is not None:
            u = result.record.usage
            shadow_side.input_tokens, shadow_side.output_tokens = u.input_tokens, u.output_tokens
            shadow_side.cost_usd = str(result.record.cost_usd)
        if t.direction == "forward":
            pair.primary, pair.candidate = served, shadow_side
            prim_out, cand_out = served_out, result.output if result is not None else None
        else:
            pair.primary, pair.candidate = shadow_side, served
            prim_out, cand_out = (result.output if result is not None else None), served_out
        if t.state == "dropped" or result is None:
            pair.outcome, pair.reason = DROPPED, t.reason
        elif served.error == "cancelled":
            pair.outcome, pair.reason = PRIMARY_FAILED, "cancelled"
        elif not pair.primary.ok:
            pair.outcome, pair.reason = PRIMARY_FAILED, pair.primary.error
        elif not pair.candidate.ok:
            pair.outcome, pair.reason = CANDIDATE_FAILED, pair.candidate.error
        else:
            pair.outcome = PAIRED
        t.primary_out, t.candidate_out = prim_out, cand_out
        if t.capture:
            pair.capture = self.redact(
                {
                    "request": t.doc,
                    "primary": prim_out.as_dict() if prim_out is not None else None,
                    "candidate": cand_out.as_dict() if cand_out is not None else None,
                }
            )
        return pair

    async def _compare(self, t: Ticket, pair: PairRecord, ln: _Lane) -> None:
        prim_out, cand_out = t.primary_out, t.candidate_out
        if prim_out is None or cand_out is None:
            return
        comps = self._comparators_for(t.cfg)
        if not comps:
            return
        if ln.comparing > t.cfg.max_concurrency * 4 + t.cfg.queue_size:
            for c in comps:
                pair.errors[c.name] = "comparator backlog: skipped"
            return
        inp = cmp.PairInput(t.endpoint, t.doc, prim_out, cand_out, self._caller_for(t))

        async def one(c: cmp.Comparator) -> None:
            try:
                s = await asyncio.wait_for(c.score(inp), t.cfg.comparator_timeout_s)
            except TimeoutError:
                pair.errors[c.name] = "timeout"
                return
            except Exception as exc:
                pair.errors[c.name] = f"{type(exc).__name__}: {exc}"[:500]
                return
            if s.value is not None:
                pair.scores[c.name] = float(s.value)
            if s.baseline is not None:
                pair.baseline[c.name] = float(s.baseline)
            if s.detail:
                pair.details[c.name] = s.detail[:200]

        await asyncio.gather(*(one(c) for c in comps))

    def _comparators_for(self, cfg: ShadowConfig) -> list[cmp.Comparator]:
        hit = self._comparators.get(id(cfg))
        if hit is not None and hit[0] is cfg:
            return hit[1]
        built = [cmp.build(c, cfg.comparator_timeout_s) for c in cfg.compare]
        if len(self._comparators) > 256:
            self._comparators.clear()
        self._comparators[id(cfg)] = (cfg, built)
        return built

    def _caller_for(self, t: Ticket) -> cmp.ModelCaller:
        async def call(endpoint: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
            return await self.call_model(t.route, t.rec, endpoint, body, timeout_s)

        return call

    async def call_model(self, route: str, origin: RequestRecord, endpoint: str, body: dict[str, Any],
                         timeout_s: float) -> dict[str, Any]:
        """A judge/embedding call routed by the gateway itself, accounted as shadow spend of ``route``."""
        policy = self.policy_of()
        model = str(body["model"])
        decision = policy.decide(RouteInput(model, {}, SHADOW_KEY, None))
        decision.timeout_s = min(decision.timeout_s or timeout_s, timeout_s)
        srec = RequestRecord(
            request_id=f"{origin.request_id}:judge:{model}", ts=time.time(), key=origin.key, team=origin.team,
            task=origin.task, route=route, requested_model=model, endpoint=endpoint, stream=False, shadow=True,
        )
        spec = CallSpec(endpoint, body, decision.defaults, False, srec.request_id)
        t0 = time.perf_counter()
        try:
            resp, outcome = await self.dispatcher.call(decision, spec)
        except UpstreamError as exc:
            srec.status, srec.outcome, srec.error_type = 502, "upstream_error", exc.error_type
            srec.backend = exc.backend
            srec.latency_s = time.perf_counter() - t0
            self._account(srec, body, None)
            raise
        srec.latency_s = srec.ttft_s = time.perf_counter() - t0
        srec.backend, srec.upstream_model = outcome.target.backend, outcome.target.upstream_model
        srec.self_hosted = outcome.backend.info.self_hosted
        srec.status = resp.status
        doc = orjson.loads(resp.body)
        if not isinstance(doc, dict):
            raise ValueError("model returned a non-object body")
        u = usage_from_response(doc)
        if u is not None:
            srec.usage, srec.has_usage = u, True
        cost = self._account(srec, body, None if srec.has_usage else (resp.body,))
        self._add_spend(route, cost)
        return doc

    # -- writing ------------------------------------------------------------------------------------------
    def _write(self, pair: PairRecord) -> None:
        self.stats["written"] += 1
        self.store.add_pair(pair)
        m = self.metrics
        if m is None:
            return
        try:
            lb = m.labels
            route = lb.route(pair.route)
            m.shadow_pairs.labels(route, lb.task(pair.task), pair.outcome).inc()
            for name, v in pair.scores.items():
                m.shadow_score.labels(route, name[:64]).observe(v)
        except Exception:
            log.exception("shadow: metric update failed")

