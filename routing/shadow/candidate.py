"""The shadow side's calls: the candidate call itself, and the judge/embedding calls comparators make.

The candidate is called straight on its backend, not through the dispatcher: no fallbacks (a failure is the
candidate's), and shadow failures never feed the circuit breakers that route client traffic. Comparator calls
are routed by the gateway's own policy. Both are accounted as shadow spend of the route (flagged ``shadow``,
outside client budgets) and count against the route's daily shadow budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Protocol

import orjson

from accounting.record import RequestRecord
from routing.dispatch import Dispatcher
from routing.eligibility import Eligibility
from routing.errors import RoutingError
from routing.policy import Policy
from routing.rules import RouteInput
from routing.shadow.budget import ShadowBudget
from routing.shadow.extract import Output, from_body, from_events
from routing.shadow.record import Side
from routing.shadow.ticket import ShadowResult, Ticket
from routing.upstream_call import CallSpec, build_call
from serving.errors import UpstreamConnectError, UpstreamError, UpstreamHTTPError, UpstreamTooLarge
from serving.translation import TranslatedStream, translated_response
from wire.anthropic.untranslatable import Untranslatable
from wire.endpoints import MESSAGES, RESPONSES
from wire.json_object import JsonObject
from wire.sse import UNBOUNDED, EventTooLarge, SSEReader, StreamBounds
from wire.usage import Usage, usage_from_response

log = logging.getLogger("pointsman.shadow")

SHADOW_KEY = "pointsman-shadow"
"""Key name on records of judge/embedding calls made by comparators."""


class ShadowAccounts(Protocol):
    """How shadow and comparator calls are accounted (``accounting.accountant.Accountant``)."""

    def price(self, rec: RequestRecord) -> Decimal: ...

    def finish(
        self,
        rec: RequestRecord,
        request_body: dict[str, Any] | None = None,
        output_events: Sequence[bytes] | None = None,
    ) -> None: ...


class CandidateCalls:
    def __init__(
        self,
        dispatcher: Dispatcher,
        accountant: ShadowAccounts,
        policy_of: Callable[[], Policy],
        budget: ShadowBudget,
        default_timeout_s: float,
        bounds: StreamBounds = UNBOUNDED,
    ) -> None:
        self.bounds = bounds
        """What a candidate stream's reader holds (``server.max_event_bytes``, ``max_retained_stream_bytes``)."""
        self.dispatcher = dispatcher
        self.accountant = accountant
        self.policy_of = policy_of
        self.budget = budget
        self.default_timeout_s = default_timeout_s

    async def call_shadow(self, t: Ticket) -> ShadowResult:
        """Call the candidate (or the baseline, for a reverse shadow) the way the primary was called."""
        target = t.shadow_model
        side = Side(model=t.shadow_model.name if t.shadow_model else "")
        if target is None:
            side.error = "model_not_found"
            return ShadowResult(side, None)
        side.backend, side.upstream_model = target.backend, target.upstream_model
        stream = t.doc.get("stream") is True
        timeout = t.cfg.timeout_s or t.rule_timeout_s or self.default_timeout_s
        rid = f"{t.rec.request_id}:shadow"
        # Straight to the candidate's backend, not through the dispatcher: no fallbacks (a failure is the
        # candidate's), and shadow failures never feed the circuit breakers that route client traffic.
        backend = self.dispatcher.registry.get(target.backend)
        trace = t.rec.trace.derived() if t.rec.trace is not None else None  # a child span of the request's
        spec = CallSpec(t.endpoint, t.body, t.defaults, stream, rid, trace)
        try:
            call = None if backend is None else build_call(spec, target, backend, timeout)
        except Untranslatable:
            side.error = "untranslatable"  # the candidate's backend cannot be asked this request
            return ShadowResult(side, None)

        srec = RequestRecord(
            request_id=rid,
            ts=time.time(),
            key=t.rec.key,
            team=t.rec.team,
            task=t.rec.task,
            route=t.route,
            requested_model=target.name,
            endpoint=t.endpoint,
            stream=stream,
            upstream_model=target.upstream_model,
            backend=target.backend,
            served_model=target.name,
            shadow=True,
            tags=dict(t.rec.tags),
            trace=trace,
        )
        output: Output | None = None
        events: list[bytes] | None = None
        raw: bytes | None = None
        usage: Usage | None = None
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(timeout + 1.0):
                if backend is None or call is None:
                    raise UpstreamConnectError(
                        f"backend {target.backend!r} is not available", backend=target.backend
                    )
                srec.self_hosted = backend.info.self_hosted
                if stream:
                    upstream = await backend.open_stream(call)
                    if call.translation is not None:
                        upstream = TranslatedStream(upstream, call.translation)
                    reader = SSEReader(
                        drop_usage=False,
                        sequenced=t.endpoint == RESPONSES,
                        bounds=self.bounds,
                        messages=t.endpoint == MESSAGES,
                    )
                    events = reader.events
                    try:  # (closed outside a ``finally``: see ``gateway.inference.relay``)
                        try:
                            async for chunk in upstream:
                                if reader.feed(chunk) and side.ttft_s is None:
                                    side.ttft_s = time.perf_counter() - t0
                            reader.flush()
                        except EventTooLarge as exc:
                            raise UpstreamTooLarge(str(exc), backend=target.backend) from exc
                    except BaseException:
                        await upstream.aclose()
                        raise
                    await upstream.aclose()
                    side.latency_s = time.perf_counter() - t0
                    output, usage = from_events(t.endpoint, events)
                    side.status = 200
                    if output.error:
                        side.error = "stream_error"
                    elif not reader.retained_all:
                        side.error = "too_large"  # only its beginning was kept: nothing fair to compare
                    elif not reader.finished:
                        side.error = "truncated"
                    else:
                        side.ok = True
                else:
                    resp = await backend.call(call)
                    if call.translation is not None:
                        resp = translated_response(resp, call.translation, backend.name)
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
        cost = self._account(
            srec, t.doc, events if stream else (None if raw is None or srec.has_usage else (raw,))
        )
        self.budget.add(t.route, cost)
        return ShadowResult(side, output, srec)

    def _account(
        self, srec: RequestRecord, body: dict[str, Any] | None, events: Sequence[bytes] | None
    ) -> Decimal:
        acc = self.accountant
        try:
            cost = acc.price(srec)
            acc.finish(srec, body, events)
        except Exception:
            log.exception("shadow: accounting failed for %s", srec.request_id)
            return Decimal(0)
        return cost

    async def call_model(
        self,
        route: str,
        origin: RequestRecord,
        endpoint: str,
        body: dict[str, Any],
        timeout_s: float,
        eligible: Eligibility | None = None,
        number: int = 1,
    ) -> dict[str, Any]:
        """A judge/embedding call routed by the gateway itself, accounted as shadow spend of ``route``; with
        ``eligible`` (the origin's team has not approved third-party processing) only in-house models serve it
        (``ConsentRequired`` otherwise: the comparator fails, nothing is sent). Its request id is the origin's with
        ``:judge:<model>:<number>``, ``number`` counting the pair's model calls (a judge asks twice, once per
        order), so that each call's ledger row has an id of its own."""
        policy = self.policy_of()
        model = str(body["model"])
        decision = policy.decide(RouteInput(model, {}, SHADOW_KEY, None), eligible)
        decision.timeout_s = min(decision.timeout_s or timeout_s, timeout_s)
        srec = RequestRecord(
            request_id=f"{origin.request_id}:judge:{model}:{number}",
            ts=time.time(),
            key=origin.key,
            team=origin.team,
            task=origin.task,
            route=route,
            requested_model=model,
            endpoint=endpoint,
            stream=False,
            shadow=True,
            trace=origin.trace.derived() if origin.trace is not None else None,
        )
        spec = CallSpec(
            endpoint, JsonObject.of(body), decision.defaults_for(endpoint), False, srec.request_id, srec.trace
        )
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
        srec.served_model = outcome.target.name
        srec.self_hosted = outcome.backend.info.self_hosted
        srec.status = resp.status
        doc = orjson.loads(resp.body)
        if not isinstance(doc, dict):
            raise ValueError("model returned a non-object body")
        u = usage_from_response(doc)
        if u is not None:
            srec.usage, srec.has_usage = u, True
        cost = self._account(srec, body, None if srec.has_usage else (resp.body,))
        self.budget.add(route, cost)
        return doc
