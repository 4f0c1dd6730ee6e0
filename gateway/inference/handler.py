"""The inference request path: the ASGI handler, read top to bottom, and its error mapping.

authenticate -> parse and validate (``validation``) -> route -> admit -> dispatch -> answer (unary here, streams
through ``relay``) -> account. Pure ASGI (no framework routing, no pydantic on bodies): this is the hot path
every model call takes. Answers and errors carry the gateway's headers (``x-request-id``, ``x-pointsman-*``) and
the few of the upstream's that are relayed (``gateway.upstream_headers``).

Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) takes the same path: the same keys
(also from ``x-api-key``), tags, routing, limits, shadow, capture and accounting. What differs is said where it
happens: its ``anthropic-version``/``anthropic-beta`` headers are forwarded, its end user is ``metadata.user_id``,
its errors have Anthropic's shape and status codes, its streams are read as Messages event streams, and counting
tokens generates nothing (not admitted, accounted or shadowed; see ``_count``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol, cast

import orjson

from accounting.accountant import Accountant
from accounting.money import usd
from accounting.record import RETENTION_CAPPED, RequestRecord
from gateway.capture import CaptureGate
from gateway.errors import ApiError, anthropic_error, compressed_body, forbidden, to_api_error, unauthorized
from gateway.inference.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    refuse_declared_length,
    send_json,
)
from gateway.inference.exchange import Exchange
from gateway.inference.outcome import outcome_for
from gateway.inference.ownership import ResponseOwnership
from gateway.inference.relay import SSE_HEADERS, relay
from gateway.inference.validation import parse_body
from gateway.inference.watch import ClientWatch, Watches
from gateway.keys import ClientKey, presented_key
from gateway.request_ids import request_id
from gateway.runtime import Runtime
from gateway.upstream_headers import relayed
from routing.dispatch import Dispatcher, Outcome
from routing.eligibility import ConsentRequired
from routing.policy import kept_in_house
from routing.response_owners import Stored, owner_of
from routing.rules import RouteInput
from routing.shadow.hub import ShadowHub
from routing.shadow.ticket import Ticket
from routing.tags import collect_tags
from routing.upstream_call import CallSpec
from serving.backend import UpstreamResponse, UpstreamStream
from serving.errors import UpstreamError
from wire.answer import stored_ids, streamed_stored_ids
from wire.endpoints import ANTHROPIC, COUNT_TOKENS, MESSAGES, RESPONSES, USAGE_OPTION
from wire.sse import SSEReader
from wire.traceparent import TraceContext
from wire.usage import usage_from_response

log = logging.getLogger("pointsman.request")

_WANTED = frozenset(
    {
        b"authorization",
        b"api-key",
        b"x-request-id",
        b"x-pointsman-task",
        b"x-pointsman-tags",
        b"x-pointsman-sticky",
        b"content-length",
        b"content-encoding",
        b"traceparent",
        b"x-api-key",
    }
)
_IDENTITY = (b"", b"identity")
"""``Content-Encoding`` values of a body sent as it is."""
_FORWARDED = {b"anthropic-version": "anthropic-version", b"anthropic-beta": "anthropic-beta"}
"""Messages API headers passed to backends that speak it (read from the request's header lines by
``_forwarded``, every line of a repeated one)."""


class CurrentRuntime(Protocol):
    """Where the runtime in force is read, once per request (``gateway.live_runtime.LiveRuntime``)."""

    @property
    def runtime(self) -> Runtime: ...


class TraceStarter(Protocol):
    """Whether and how a request is traced (``accounting.export.otel.TraceSampler``)."""

    def start(self, traceparent: bytes | None) -> TraceContext | None: ...


class InferenceHandler:
    def __init__(
        self,
        live: CurrentRuntime,
        accountant: Accountant,
        dispatcher: Dispatcher,
        shadow: ShadowHub,
        capture: CaptureGate,
        owners: ResponseOwnership,
        traces: TraceStarter | None = None,
    ) -> None:
        self.live = live
        self.accountant = accountant
        self.dispatcher = dispatcher
        self.shadow = shadow
        self.capture = capture
        self.traces = traces
        self.owners = owners
        """Who made each stored Responses API answer (``gateway.inference.ownership``)."""
        self.in_flight = 0
        self.watches = Watches()
        """Clients of non-streamed requests to watch for hang-ups once their answer takes a while."""

    # -- entry -----------------------------------------------------------------------------------------
    async def handle(self, scope: Scope, receive: Receive, send: Send, endpoint: str) -> None:
        t0 = time.perf_counter()
        ts = time.time()
        h: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            if k in _WANTED:
                h[k] = v
        rid = request_id(h.get(b"x-request-id"))
        base = [(b"x-request-id", rid.encode())]
        rt = self.live.runtime
        rec: RequestRecord | None = None
        ticket: Ticket | None = None
        x: Exchange | None = None
        key: ClientKey | None = None
        anthropic = endpoint in ANTHROPIC
        self.in_flight += 1
        try:
            key = _authenticate(rt, h, anthropic)
            limit = rt.config.server.max_body_bytes
            refuse_declared_length(h.get(b"content-length"), limit)
            if b"content-encoding" in h and h[b"content-encoding"].strip().lower() not in _IDENTITY:
                raise compressed_body()
            body = parse_body(await read_body(receive, limit), endpoint)
            doc = body.doc
            model: str = doc["model"]
            if not key.may_use(model):
                raise forbidden(f"This API key may not use the model `{model}`.")
            md = doc.get("metadata")
            if anthropic and isinstance(md, dict) and "user_id" in md:  # an end user, not a tag
                md = {k: v for k, v in md.items() if k != "user_id"}
            tags = collect_tags(_s(h.get(b"x-pointsman-task")), _s(h.get(b"x-pointsman-tags")), md, key.tags)
            bad_tag = key.tags_allowed(tags)
            if bad_tag is not None:
                raise forbidden(f"This API key may not use the tag value {bad_tag}={tags[bad_tag]!r}.")
            if endpoint == RESPONSES:
                await self.owners.check(doc, key.name, key.team)  # a continuation stays within its team
            eligible = rt.consent.eligibility(key.name, key.team, key.scope)
            try:
                decision = rt.policy.decide(
                    RouteInput(
                        model,
                        tags,
                        key.name,
                        key.team,
                        _s(h.get(b"x-pointsman-sticky")),
                        _end_user(doc) if anthropic else _str_or_none(doc.get("user")),
                    ),
                    eligible,
                )
            except ConsentRequired:
                self.accountant.metrics.consent(key.team, "refused")
                raise
            if eligible is not key.scope and kept_in_house(decision):
                self.accountant.metrics.consent(key.team, "rerouted")
            stream = doc.get("stream") is True
            trace = self.traces.start(h.get(b"traceparent")) if self.traces is not None else None
            rec = RequestRecord(
                request_id=rid,
                ts=ts,
                key=key.name,
                team=key.team,
                task=tags.get("task"),
                route=decision.route,
                requested_model=model,
                endpoint=endpoint,
                stream=stream,
                tags=tags,
                trace=trace,
            )
            forwarded = _forwarded(scope["headers"]) if anthropic else None
            defaults = decision.defaults_for(endpoint)
            spec = CallSpec(endpoint, body, defaults, stream, rid, trace, forwarded)
            if endpoint == COUNT_TOKENS:
                counting, rec = rec, None  # generates nothing: neither admitted nor accounted
                await self._count(Exchange(send, receive, spec, decision, counting, base, t0, None))
                return
            if self.accountant.limits.active:  # (admission also refuses an unpriced model a budget covers)
                await self.accountant.admit(rec, doc, len(body.text), decision.attempts, defaults)
            ticket = self.shadow.begin(decision, rec, endpoint, body)  # sampled: shadow call starts now
            x = Exchange(send, receive, spec, decision, rec, base, t0, ticket)
            if stream:
                await self._stream(x)
            else:
                await self._unary(x)
        except ClientGone:
            return
        except Exception as exc:
            err = to_api_error(exc)
            if (
                err.status >= 500
                and not isinstance(exc, ApiError | UpstreamError)
                and err.code == "internal_error"
            ):
                log.exception("unexpected error handling request %s", rid)
            headers = base + [(k.encode(), v.encode()) for k, v in err.headers.items()] + err.relayed
            if rec is not None:
                headers.append((b"x-pointsman-route", rec.route.encode()))
                if rec.backend:
                    headers.append((b"x-pointsman-backend", rec.backend.encode()))
            status, err_body = anthropic_error(err) if anthropic else (err.status, err.body())
            try:
                await send_json(send, status, err_body, headers)
            except Exception:  # the response had started, or could not be sent: still account the request
                log.exception("could not send the error response for request %s", rid)
            if rec is not None:
                rec.status = status
                rec.outcome = outcome_for(err, exc)
                rec.error_type = getattr(exc, "error_type", None) or err.code
                rec.latency_s = time.perf_counter() - t0
                self.accountant.finish(rec)
            else:  # refused before routing (key, body, scope): a log line, no ledger row
                self.accountant.refused(
                    rid,
                    ts,
                    key.name if key is not None else "",
                    endpoint,
                    status,
                    outcome_for(err, exc),
                    err.code or err.type,
                    time.perf_counter() - t0,
                )
        except asyncio.CancelledError:
            # Cancelled at an await (graceful shutdown past server.graceful_timeout_s): the request was not
            # accounted yet (every finish() is followed only by synchronous code), so record it now. Once its
            # upstream call was made (``_dispatch`` notes the backend), the prompt and what was streamed are
            # estimated, as for a client that hung up.
            if rec is not None:
                rec.status = 499
                rec.outcome = "cancelled"
                rec.error_type = "shutdown"
                rec.latency_s = time.perf_counter() - t0
                if rec.backend:
                    self.accountant.finish(rec, doc, x.events if x is not None else None)
                else:
                    self.accountant.finish(rec)
            raise
        finally:
            self.in_flight -= 1
            if rec is not None:
                self.accountant.release_unsettled(rec)  # ended without being accounted: free its reservation
                if ticket is not None:
                    ticket.finish(rec)  # never waits: the pair is completed off the request path

    # -- dispatch --------------------------------------------------------------------------------------------
    async def _dispatch(self, x: Exchange) -> tuple[UpstreamResponse | UpstreamStream, Outcome]:
        """Run the routing decision (fallbacks, retries) and note on the record what served it; a client that
        hangs up meanwhile cancels the upstream call (499 ``cancelled``, ``client_disconnected``)."""
        decision, rec = x.decision, x.rec
        waiting_on = decision.attempts[0].backend if decision.attempts else ""
        self.accountant.track_in_flight(waiting_on, 1)
        watch = ClientWatch(x.receive, self.watches)
        try:
            if x.call.stream:
                res: UpstreamResponse | UpstreamStream
                res, outcome = await self.dispatcher.open_stream(decision, x.call)
            else:
                res, outcome = await self.dispatcher.call(decision, x.call)
        except UpstreamError as exc:
            rec.backend = exc.backend or rec.backend
            raise
        except asyncio.CancelledError:
            # The client hung up before the answer (or the stream's first bytes) came, or shutdown cancelled the
            # request: the upstream call was cancelled, its connection closed, which stops generation. Nothing was
            # sent back, but the prompt was handed to the upstream (the watch starts only after watches.delay): it
            # is counted by the estimator (docs/accounting.md, Usage), as the model the request was waiting on.
            target = decision.attempts[0] if decision.attempts else None
            if target is not None and not rec.backend:
                rec.backend, rec.upstream_model, rec.served_model = (
                    target.backend,
                    target.upstream_model,
                    target.name,
                )
            if not watch.absorb():
                raise  # (shutdown: ``handle`` records it)
            rec.status = 499
            rec.outcome = "cancelled"
            rec.error_type = "client_disconnected"
            rec.latency_s = time.perf_counter() - x.t0
            self.accountant.finish(rec, x.call.doc)
            raise ClientGone() from None
        finally:
            watch.close()
            self.accountant.track_in_flight(waiting_on, -1)
        rec.backend = outcome.target.backend
        rec.upstream_model = outcome.target.upstream_model
        rec.served_model = outcome.target.name
        rec.self_hosted = outcome.backend.info.self_hosted
        rec.fallbacks = outcome.fallbacks
        rec.failed_attempts = [(a.backend, a.error) for a in outcome.tried if a.error]
        return res, outcome

    # -- non-streaming -----------------------------------------------------------------------------------
    async def _unary(self, x: Exchange) -> None:
        rec = x.rec
        t_up = time.perf_counter()
        res, _ = await self._dispatch(x)
        resp: UpstreamResponse = res  # type: ignore[assignment]  # (unary: an answer, not a stream)
        t_done = time.perf_counter()
        parsed = resp.document(rec.backend)
        if x.ticket is not None:
            x.ticket.primary_body(parsed)
        usage = usage_from_response(parsed)
        if usage is not None:
            rec.usage = usage
            rec.has_usage = True
        rec.status = resp.status
        cost = self.accountant.price(rec)
        headers = x.headers + _served_headers(rec) + relayed(resp.headers)
        if rec.has_usage or resp.status >= 400:
            headers += _usage_headers(rec, cost)
        else:  # counted by a tokenizer after the response (ledger row estimated = 1): no cost to show yet
            headers.append((b"x-pointsman-usage", b"estimated"))
        await send_json(x.send, resp.status, resp.body, headers)
        t_end = time.perf_counter()
        rec.latency_s = t_end - x.t0
        rec.ttft_s = rec.latency_s
        rec.overhead_s = (t_up - x.t0) + (t_end - t_done)
        doc = x.call.doc
        self.capture.attach_content(rec, doc, parsed)
        self.accountant.finish(rec, doc, None if rec.has_usage else (resp.body,))
        self.capture.offer(rec, x.decision, doc, parsed)
        if x.call.endpoint == RESPONSES and resp.status < 400:
            self.owners.record_soon(
                stored_ids(doc, parsed), Stored(owner_of(rec.key, rec.team), rec.backend, resp.endpoint)
            )

    # -- streaming ---------------------------------------------------------------------------------------
    async def _stream(self, x: Exchange) -> None:
        rec, doc = x.rec, x.call.doc
        t_up = time.perf_counter()
        res, outcome = await self._dispatch(x)
        upstream = cast(UpstreamStream, res)
        t_open = time.perf_counter()
        so = doc.get("stream_options")
        client_wants_usage = x.call.endpoint not in USAGE_OPTION or bool(so and so.get("include_usage"))
        reader = SSEReader(
            drop_usage=not client_wants_usage,
            sequenced=x.call.endpoint == RESPONSES,
            bounds=self.live.runtime.stream_bounds,
            messages=x.call.endpoint == MESSAGES,
        )
        x.events = reader.events
        rec.status = 200
        headers = SSE_HEADERS + x.headers + _served_headers(rec) + relayed(upstream.headers)
        await x.send({"type": "http.response.start", "status": 200, "headers": headers})
        overhead = (t_up - x.t0) + (time.perf_counter() - t_open)
        await relay(x, upstream, reader, self.accountant.track_in_flight, self.watches)
        if not reader.retained_all and rec.error_type is None:
            # Relayed whole, kept only in part: token estimates (without usage), shadow and capture saw a prefix.
            rec.error_type = RETENTION_CAPPED
        if x.ticket is not None:
            x.ticket.primary_events(reader.events)
        self.dispatcher.observe_ttft(outcome, rec.ttft_s)
        if reader.usage is not None:
            rec.usage = reader.usage
            rec.has_usage = True
        rec.latency_s = time.perf_counter() - x.t0
        rec.overhead_s = overhead
        self.accountant.price(rec)
        self.capture.attach_content(rec, doc, None, reader.events)
        self.accountant.finish(rec, doc, reader.events)
        self.capture.offer(rec, x.decision, doc, None, reader.events)
        if x.call.endpoint == RESPONSES:
            self.owners.record_soon(
                streamed_stored_ids(doc, reader.events),
                Stored(owner_of(rec.key, rec.team), rec.backend, upstream.endpoint),
            )

    # -- counting tokens (Messages API) ----------------------------------------------------------------------
    async def _count(self, x: Exchange) -> None:
        """``/v1/messages/count_tokens``: asked of the model's backend when it speaks the Messages API; for any
        other backend the gateway counts (vLLM's ``/tokenize`` for self-hosted models, else its estimator) and
        says so with ``x-pointsman-usage: estimated``."""
        target = x.decision.attempts[0] if x.decision.attempts else None
        backend = self.dispatcher.registry.get(target.backend) if target is not None else None
        if target is None or backend is None or backend.speaks_messages:
            res, _ = await self._dispatch(x)
            resp = cast(UpstreamResponse, res)
            headers = x.headers + _served_headers(x.rec) + relayed(resp.headers)
            await send_json(x.send, resp.status, resp.body, headers)
            return
        x.rec.backend, x.rec.upstream_model, x.rec.served_model = (
            target.backend,
            target.upstream_model,
            target.name,
        )
        n, _, _ = await self.accountant.estimator.estimate(
            COUNT_TOKENS, backend.name, target.upstream_model, backend.info.self_hosted, x.call.doc, None
        )
        headers = x.headers + _served_headers(x.rec) + [(b"x-pointsman-usage", b"estimated")]
        await send_json(x.send, 200, orjson.dumps({"input_tokens": n}), headers)


def _authenticate(rt: Runtime, h: dict[bytes, bytes], anthropic: bool) -> ClientKey:
    secret = presented_key(
        _latin(h.get(b"authorization")), _latin(h.get(b"api-key")), _latin(h.get(b"x-api-key"))
    )
    if not secret:
        raise unauthorized(
            "Missing API key. Send it as 'x-api-key: <key>' or 'Authorization: Bearer <key>'."
            if anthropic
            else "Missing API key. Send it as 'Authorization: Bearer <key>'."
        )
    key = rt.keys.lookup(secret)
    if key is None:
        raise unauthorized("Incorrect API key provided.")
    return key


def _served_headers(rec: RequestRecord) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-pointsman-backend", rec.backend.encode()),
        (b"x-pointsman-model", rec.upstream_model.encode("utf-8", "replace")),
        (b"x-pointsman-route", rec.route.encode()),
    ]


def _usage_headers(rec: RequestRecord, cost: Decimal) -> list[tuple[bytes, bytes]]:
    u = rec.usage
    out = [
        (b"x-pointsman-usage", b"reported"),
        (b"x-pointsman-cost-usd", usd(cost).encode()) if rec.priced else _UNPRICED,  # never a cost of 0
        (b"x-pointsman-tokens-input", str(u.input_tokens).encode()),
        (b"x-pointsman-tokens-output", str(u.output_tokens).encode()),
    ]
    if u.cached_input_tokens:
        out.append((b"x-pointsman-tokens-cached-input", str(u.cached_input_tokens).encode()))
    if u.cache_write_tokens:
        out.append((b"x-pointsman-tokens-cache-write", str(u.cache_write_tokens).encode()))
    return out


_UNPRICED = (b"x-pointsman-priced", b"false")
"""In place of the cost header, for a model without a price (docs/accounting.md, No model is silently free)."""


def _latin(v: bytes | None) -> str | None:
    return v.decode("latin-1") if v else None


def _s(v: bytes | None) -> str | None:
    return v.decode("utf-8", "replace") if v else None


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _end_user(doc: dict[str, Any]) -> str | None:
    """A Messages request's end user: ``metadata.user_id``."""
    md = doc.get("metadata")
    return _str_or_none(md.get("user_id")) if isinstance(md, dict) else None


def _forwarded(lines: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ``_FORWARDED`` headers among a request's header lines. A header sent as several lines is one value,
    its lines' values joined by ``", "`` in the order sent (RFC 9110, 5.3: the same header to any recipient)."""
    out: dict[str, str] = {}
    for k, v in lines:
        name = _FORWARDED.get(k)
        if name is not None:
            value = v.decode("latin-1")
            out[name] = f"{out[name]}, {value}" if name in out else value
    return out
