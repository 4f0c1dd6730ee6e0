"""The inference request path: auth, parse, route, dispatch, relay, account.

Pure ASGI (no framework routing, no pydantic on bodies): this is the hot path every model call takes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from typing import Any, cast

import orjson

from accounting.record import RequestRecord
from accounting.usage import usage_from_response
from gateway.errors import ApiError, bad_request, error_body, forbidden, to_api_error, unauthorized
from gateway.inference.asgi import ClientGone, Receive, Scope, Send, read_body, send_json
from gateway.inference.sse import SSEReader
from gateway.keys import ClientKey
from gateway.runtime import Runtime
from gateway.state import GatewayState
from routing.dispatch import Outcome
from routing.models import ResolvedModel
from routing.policy import Decision, RouteInput
from routing.shadow.hub import Ticket
from routing.tags import collect_tags
from serving.backend import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    UpstreamCall,
    UpstreamResponse,
    UpstreamStream,
)
from serving.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout

log = logging.getLogger("pointsman.request")

_RID_OK = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # never valid in a model name; would break the echoed headers
_WANTED = frozenset(
    {
        b"authorization",
        b"api-key",
        b"x-request-id",
        b"x-pointsman-task",
        b"x-pointsman-tags",
        b"x-pointsman-sticky",
    }
)
_REQUIRED = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input", RESPONSES: "input"}
_STREAMABLE = frozenset({CHAT, COMPLETIONS, RESPONSES})
_USAGE_OPTION = frozenset({CHAT, COMPLETIONS})
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _int_field(doc: dict[str, Any], name: str, lo: int, hi: int) -> None:
    v = doc.get(name)
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad_request(f"'{name}' must be an integer between {lo} and {hi}.", name, "invalid_value")


def _num_field(doc: dict[str, Any], name: str, lo: float, hi: float) -> None:
    v = doc.get(name)
    if v is None:
        return
    if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad_request(f"'{name}' must be a number between {lo} and {hi}.", name, "invalid_value")


def validate_body(doc: Any, endpoint: str) -> dict[str, Any]:
    """Cheap structural checks only; the upstream validates the rest and its 4xx is passed through."""
    if not isinstance(doc, dict):
        raise bad_request("The request body must be a JSON object.")
    model = doc.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise bad_request("'model' is required and must be a non-empty string.", "model", "missing_required_parameter")
    if _CONTROL.search(model):
        raise bad_request("'model' must not contain control characters.", "model", "invalid_value")
    field = _REQUIRED[endpoint]
    v = doc.get(field)
    if endpoint == CHAT:
        if not isinstance(v, list) or not v or not all(isinstance(m, dict) for m in v):
            raise bad_request("'messages' must be a non-empty array of message objects.", "messages")
    elif endpoint == RESPONSES:
        if v is None and doc.get("previous_response_id") is None:
            raise bad_request("'input' is required.", "input", "missing_required_parameter")
    elif v is None:
        raise bad_request(f"'{field}' is required.", field, "missing_required_parameter")
    stream = doc.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", "stream")
    if stream and endpoint not in _STREAMABLE:
        raise bad_request(f"Streaming is not supported for /v1/{endpoint}.", "stream")
    _int_field(doc, "max_tokens", 0, 10_000_000)
    _int_field(doc, "max_completion_tokens", 0, 10_000_000)
    _int_field(doc, "max_output_tokens", 0, 10_000_000)
    _int_field(doc, "n", 1, 128)
    _num_field(doc, "temperature", 0, 2)
    _num_field(doc, "top_p", 0, 1)
    md = doc.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise bad_request("'metadata' must be an object.", "metadata")
    so = doc.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    return doc


# Generated ids: 64 random bits per process, then a counter (32 hex chars; unique across replicas and
# restarts without a syscall per request).
_RID_PREFIX = secrets.token_hex(8)
_rid_counter = itertools.count(secrets.randbits(40))


def request_id(raw: bytes | None) -> str:
    if raw and _RID_OK.match(raw):
        return raw.decode("ascii")
    return f"{_RID_PREFIX}{next(_rid_counter):016x}"


def outcome_for(status: int, code: str | None) -> str:
    if status < 400:
        return "ok"
    if status == 429:
        return "budget_exceeded" if code == "insufficient_quota" else "rate_limited"
    if status == 504:
        return "timeout"
    if status in (502, 503) or status >= 500:
        return "upstream_error"
    return "client_error"


class InferenceService:
    def __init__(self, state: GatewayState) -> None:
        self.state = state

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
        state = self.state
        rt = state.runtime
        rec: RequestRecord | None = None
        ticket: Ticket | None = None
        state.in_flight += 1
        try:
            key = self._authenticate(rt, h)
            body = await read_body(receive, rt.config.server.max_body_bytes)
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
            doc = validate_body(doc, endpoint)
            model: str = doc["model"]
            if not key.may_use(model):
                raise forbidden(f"This API key may not use the model `{model}`.")
            tags = collect_tags(
                _s(h.get(b"x-pointsman-task")), _s(h.get(b"x-pointsman-tags")), doc.get("metadata"), key.tags
            )
            bad_tag = key.tags_allowed(tags)
            if bad_tag is not None:
                raise forbidden(f"This API key may not use the tag value {bad_tag}={tags[bad_tag]!r}.")
            decision = rt.policy.decide(
                RouteInput(model, tags, key.name, key.team, _s(h.get(b"x-pointsman-sticky")), _str_or_none(doc.get("user")))
            )
            stream = doc.get("stream") is True
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
            )
            await state.accountant.admit(key.name, key.team, model)
            ticket = state.shadow.hub.begin(decision, rec, endpoint, doc)  # sampled: shadow call starts now
            if stream:
                await self._stream(scope, receive, send, endpoint, doc, decision, rec, base, t0, ticket)
            else:
                await self._unary(send, endpoint, doc, decision, rec, base, t0, ticket)
        except ClientGone:
            return
        except Exception as exc:
            err = to_api_error(exc)
            if err.status >= 500 and not isinstance(exc, ApiError | UpstreamError) and err.code == "internal_error":
                log.exception("unexpected error handling request %s", rid)
            headers = base + [(k.encode(), v.encode()) for k, v in err.headers.items()]
            if rec is not None:
                headers.append((b"x-pointsman-route", rec.route.encode()))
                if rec.backend:
                    headers.append((b"x-pointsman-backend", rec.backend.encode()))
            try:
                await send_json(send, err.status, err.body(), headers)
            except Exception:  # the response had started, or could not be sent: still account the request
                log.exception("could not send the error response for request %s", rid)
            if rec is not None:
                rec.status = err.status
                rec.outcome = outcome_for(err.status, err.code)
                rec.error_type = getattr(exc, "error_type", None) or err.code
                rec.latency_s = time.perf_counter() - t0
                state.accountant.finish(rec)
        except asyncio.CancelledError:
            # Cancelled at an await (graceful shutdown past server.graceful_timeout_s): the request was not
            # accounted yet (every finish() is followed only by synchronous code), so record it now.
            if rec is not None:
                rec.status = 499
                rec.outcome = "cancelled"
                rec.error_type = "shutdown"
                rec.latency_s = time.perf_counter() - t0
                state.accountant.finish(rec)
            raise
        finally:
            state.in_flight -= 1
            if ticket is not None and rec is not None:
                ticket.finish(rec)  # never waits: the pair is completed off the request path

    def _authenticate(self, rt: Runtime, h: dict[bytes, bytes]) -> ClientKey:
        raw = h.get(b"authorization")
        secret: str | None = None
        if raw is not None:
            scheme, _, token = raw.partition(b" ")
            if scheme.lower() == b"bearer" and token:
                secret = token.strip().decode("latin-1")
        if secret is None and (api_key := h.get(b"api-key")):
            secret = api_key.strip().decode("latin-1")
        if not secret:
            raise unauthorized("Missing API key. Send it as 'Authorization: Bearer <key>'.")
        key = rt.keys.lookup(secret)
        if key is None:
            raise unauthorized("Incorrect API key provided.")
        return key

    # -- building upstream calls --------------------------------------------------------------------------
    @staticmethod
    def _factory(endpoint: str, doc: dict[str, Any], decision: Decision, stream: bool, rid: str) -> Any:
        defaults = decision.defaults

        def make(target: ResolvedModel, remaining: float) -> UpstreamCall:
            body = {**defaults, **doc} if defaults else dict(doc)
            body["model"] = target.upstream_model
            if stream and endpoint in _USAGE_OPTION:
                so = body.get("stream_options")
                body["stream_options"] = {**so, "include_usage": True} if so else {"include_usage": True}
            return UpstreamCall(endpoint, body, stream, remaining, rid)

        return make

    async def _dispatch(
        self, endpoint: str, doc: dict[str, Any], decision: Decision, rec: RequestRecord, *, stream: bool
    ) -> tuple[UpstreamResponse | UpstreamStream, Outcome]:
        """Run the routing decision (fallbacks, retries) and note on the record what served it."""
        state = self.state
        waiting_on = decision.attempts[0].backend if decision.attempts else ""
        state.accountant.track_in_flight(waiting_on, 1)
        make = self._factory(endpoint, doc, decision, stream, rec.request_id)
        try:
            if stream:
                res: UpstreamResponse | UpstreamStream
                res, outcome = await state.dispatcher.open_stream(decision, make)
            else:
                res, outcome = await state.dispatcher.call(decision, make)
        except UpstreamError as exc:
            self._note_failure(rec, exc)
            raise
        finally:
            state.accountant.track_in_flight(waiting_on, -1)
        self._note_outcome(rec, outcome)
        return res, outcome

    # -- non-streaming -----------------------------------------------------------------------------------
    async def _unary(
        self,
        send: Send,
        endpoint: str,
        doc: dict[str, Any],
        decision: Decision,
        rec: RequestRecord,
        base: list[tuple[bytes, bytes]],
        t0: float,
        ticket: Ticket | None = None,
    ) -> None:
        state = self.state
        t_up = time.perf_counter()
        res, _ = await self._dispatch(endpoint, doc, decision, rec, stream=False)
        resp = cast(UpstreamResponse, res)
        t_done = time.perf_counter()
        parsed = resp.parsed
        if parsed is None:
            try:
                parsed = orjson.loads(resp.body)
            except orjson.JSONDecodeError:
                parsed = None
        if not isinstance(parsed, dict):
            raise UpstreamProtocolError("upstream sent invalid JSON", backend=rec.backend)
        if ticket is not None:
            ticket.primary_body(parsed)
        usage = usage_from_response(parsed)
        if usage is not None:
            rec.usage = usage
            rec.has_usage = True
        rec.status = resp.status
        cost = state.accountant.price(rec)
        headers = base + self._served_headers(rec)
        headers.append((b"x-pointsman-cost-usd", str(cost).encode()))
        u = rec.usage
        headers.append((b"x-pointsman-tokens-input", str(u.input_tokens).encode()))
        headers.append((b"x-pointsman-tokens-output", str(u.output_tokens).encode()))
        if u.cached_input_tokens:
            headers.append((b"x-pointsman-tokens-cached-input", str(u.cached_input_tokens).encode()))
        await send_json(send, resp.status, resp.body, headers)
        t_end = time.perf_counter()
        rec.latency_s = t_end - t0
        rec.ttft_s = rec.latency_s
        rec.overhead_s = (t_up - t0) + (t_end - t_done)
        state.accountant.finish(rec, doc, None if rec.has_usage else (resp.body,))
        state.capture.offer(rec, decision, doc, parsed)

    def _served_headers(self, rec: RequestRecord) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-pointsman-backend", rec.backend.encode()),
            (b"x-pointsman-model", rec.upstream_model.encode("utf-8", "replace")),
            (b"x-pointsman-route", rec.route.encode()),
        ]

    @staticmethod
    def _note_outcome(rec: RequestRecord, outcome: Outcome) -> None:
        rec.backend = outcome.target.backend
        rec.upstream_model = outcome.target.upstream_model
        rec.self_hosted = outcome.backend.info.self_hosted
        rec.fallbacks = outcome.fallbacks
        rec.failed_attempts = [(a.backend, a.error) for a in outcome.tried if a.error]

    @staticmethod
    def _note_failure(rec: RequestRecord, exc: UpstreamError) -> None:
        rec.backend = exc.backend or rec.backend

    # -- streaming ---------------------------------------------------------------------------------------
    async def _stream(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: str,
        doc: dict[str, Any],
        decision: Decision,
        rec: RequestRecord,
        base: list[tuple[bytes, bytes]],
        t0: float,
        ticket: Ticket | None = None,
    ) -> None:
        state = self.state
        t_up = time.perf_counter()
        res, outcome = await self._dispatch(endpoint, doc, decision, rec, stream=True)
        upstream = cast(UpstreamStream, res)
        t_open = time.perf_counter()
        so = doc.get("stream_options")
        client_wants_usage = endpoint not in _USAGE_OPTION or bool(so and so.get("include_usage"))
        reader = SSEReader(drop_usage=not client_wants_usage)
        rec.status = 200
        headers = base + self._served_headers(rec)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + headers})
        overhead = (t_up - t0) + (time.perf_counter() - t_open)
        await self._relay(receive, send, upstream, reader, rec, endpoint, t0)
        if ticket is not None:
            ticket.primary_events(reader.events)
        state.dispatcher.observe_ttft(outcome, rec.ttft_s)
        if reader.usage is not None:
            rec.usage = reader.usage
            rec.has_usage = True
        rec.latency_s = time.perf_counter() - t0
        rec.overhead_s = overhead
        state.accountant.price(rec)
        state.accountant.finish(rec, doc, reader.events)
        state.capture.offer(rec, decision, doc, None, reader.events)

    async def _relay(
        self,
        receive: Receive,
        send: Send,
        upstream: UpstreamStream,
        reader: SSEReader,
        rec: RequestRecord,
        endpoint: str,
        t0: float,
    ) -> None:
        task = asyncio.current_task()
        disconnected = False

        async def watch() -> None:
            nonlocal disconnected
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    disconnected = True
                    if task is not None:
                        task.cancel()
                    return

        watcher = asyncio.get_running_loop().create_task(watch())
        self.state.accountant.track_in_flight(rec.backend, 1)
        try:
            try:
                async for chunk in upstream:
                    out = reader.feed(chunk)
                    if out:
                        if rec.ttft_s is None:
                            rec.ttft_s = time.perf_counter() - t0
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                tail = reader.flush()
                if tail:
                    await send({"type": "http.response.body", "body": tail, "more_body": True})
            except UpstreamError as exc:
                rec.outcome = "timeout" if isinstance(exc, UpstreamTimeout) else "upstream_error"
                rec.error_type = exc.error_type
                await send(
                    {"type": "http.response.body", "body": _stream_error(endpoint, exc), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not disconnected:
                raise
            if task is not None:
                task.uncancel()
            if not reader.saw_done:  # a client that leaves after [DONE] got the whole stream
                rec.outcome = "cancelled"
                rec.status = 499
        except OSError:
            if not reader.saw_done:
                rec.outcome = "cancelled"
                rec.status = 499
        finally:
            self.state.accountant.track_in_flight(rec.backend, -1)
            watcher.cancel()
            await upstream.aclose()


def _stream_error(endpoint: str, exc: UpstreamError) -> bytes:
    err = to_api_error(exc)
    if endpoint == RESPONSES:
        payload = orjson.dumps({"type": "error", "code": err.code, "message": err.message, "param": None})
        return b"event: error\ndata: " + payload + b"\n\n"
    return b"data: " + error_body(err.message, err.type, err.code) + b"\n\ndata: [DONE]\n\n"


def _s(v: bytes | None) -> str | None:
    return v.decode("utf-8", "replace") if v else None


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None

