"""Pairing: the primary's side of a pair, the pair record, its comparator scores, and writing it.

Runs off the request path, once both sides are done. ``Comparing`` caches the built comparators per shadow
config (configs are immutable runtime objects, swapped whole).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from accounting.metrics import Metrics
from accounting.money import usd
from accounting.record import RETENTION_CAPPED, RequestRecord
from routing.eligibility import Eligibility
from routing.shadow import comparators as cmp
from routing.shadow.config import ShadowConfig
from routing.shadow.extract import Output, from_body, from_events
from routing.shadow.record import CANDIDATE_FAILED, DROPPED, PAIRED, PRIMARY_FAILED, PairRecord, Side
from routing.shadow.store import PairStore
from routing.shadow.ticket import ShadowResult, Ticket

log = logging.getLogger("pointsman.shadow")

CallModel = Callable[
    [str, RequestRecord, str, dict[str, Any], float, Eligibility | None, int], Awaitable[dict[str, Any]]
]
"""(route, origin record, endpoint, body, timeout, the origin's in-house constraint, the call's number among the
pair's model calls, from 1) -> response document: a comparator's model call."""


def primary_side(t: Ticket) -> tuple[Side, Output | None]:
    rec = t.rec
    side = Side(
        model=t.served.name,
        backend=rec.backend,
        upstream_model=rec.upstream_model,
        status=rec.status,
        latency_s=rec.latency_s,
        ttft_s=rec.ttft_s if rec.stream else None,
        input_tokens=rec.usage.input_tokens,
        output_tokens=rec.usage.output_tokens,
        cost_usd=usd(rec.cost_usd),
        priced=rec.priced,
        fallbacks=rec.fallbacks,
    )
    output: Output | None = None
    if rec.outcome == "cancelled":
        side.error = "cancelled"
    elif rec.status >= 400 or rec.outcome != "ok":
        side.error = rec.error_type or rec.outcome
    elif rec.error_type == RETENTION_CAPPED:
        side.error = "too_large"  # only the stream's beginning was kept: nothing fair to compare
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


def pair_of(t: Ticket, result: ShadowResult | None, redact: Callable[[Any], Any]) -> PairRecord:
    """The one pair record of a ticket: both sides, the outcome, and (when allowed) the redacted texts."""
    rec = t.rec
    served, served_out = primary_side(t)
    pair = PairRecord(
        id=rec.request_id,
        ts=rec.ts,
        route=t.route,
        task=rec.task,
        team=rec.team,
        key=rec.key,
        endpoint=t.endpoint,
        stream=rec.stream,
        direction=t.direction,
    )
    shadow_side = (
        result.side if result is not None else Side(model=t.shadow_model.name if t.shadow_model else "")
    )
    if result is not None and result.record is not None:
        u = result.record.usage
        shadow_side.input_tokens, shadow_side.output_tokens = u.input_tokens, u.output_tokens
        shadow_side.cost_usd = usd(result.record.cost_usd)
        shadow_side.priced = result.record.priced
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
        pair.capture = redact(
            {
                "request": t.doc,
                "primary": prim_out.as_dict() if prim_out is not None else None,
                "candidate": cand_out.as_dict() if cand_out is not None else None,
            }
        )
    return pair


class Comparing:
    def __init__(self, call_model: CallModel) -> None:
        self.call_model = call_model
        self._comparators: dict[int, tuple[ShadowConfig, list[cmp.Comparator]]] = {}

    async def compare(self, t: Ticket, pair: PairRecord, comparing: int) -> None:
        """Score a paired answer with the route's comparators (``comparing``: pairs being compared now)."""
        prim_out, cand_out = t.primary_out, t.candidate_out
        if prim_out is None or cand_out is None:
            return
        comps = self.comparators_for(t.cfg)
        if not comps:
            return
        if comparing > t.cfg.max_concurrency * 4 + t.cfg.queue_size:
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

    def comparators_for(self, cfg: ShadowConfig) -> list[cmp.Comparator]:
        hit = self._comparators.get(id(cfg))
        if hit is not None and hit[0] is cfg:
            return hit[1]
        built = [cmp.build(c, cfg.comparator_timeout_s) for c in cfg.compare]
        if len(self._comparators) > 256:
            self._comparators.clear()
        self._comparators[id(cfg)] = (cfg, built)
        return built

    def _caller_for(self, t: Ticket) -> cmp.ModelCaller:
        numbers = itertools.count(1)  # each of the pair's model calls is a ledger row with an id of its own

        async def call(endpoint: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
            return await self.call_model(t.route, t.rec, endpoint, body, timeout_s, t.consent, next(numbers))

        return call


def write_pair(store: PairStore, metrics: Metrics | None, pair: PairRecord) -> None:
    """Store the pair and count it (outcome, scores) in the metrics."""
    store.add_pair(pair)
    m = metrics
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
