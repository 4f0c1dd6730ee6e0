"""A fake OpenAI-compatible upstream speaking the real wire protocol over HTTP.

It behaves like the OpenAI API in what clients depend on (shapes in ``openai_chat``, ``openai_responses``,
``openai_errors``; answers decided by ``openai_answers``): tool calls (streamed as argument deltas), JSON
answers for ``response_format``/``text.format``, ``n > 1``, logprobs, usage details (cached and reasoning
tokens), base64 embeddings, the Responses API with its full event sequence, and the API's error bodies and
headers (``x-request-id``, ``x-ratelimit-*``, ``retry-after``).

Behaviour is chosen per request by the model name's suffix or by ``FakeOpenAI.behaviors[model]``:
ok (default), no_usage, cached, slow (first byte after ``delay``), linger (answers after
2.5 s unless the caller leaves first), fail_NNN (that HTTP status with the API's
error body), flaky_429 (every other request for the model answers 429), hang, bad_json, wrong_ctype,
reset_mid_stream, stall_mid_stream, huge.
Every request is recorded, and the ``x-request-id`` of every answer; stream cancellations seen by the upstream are
counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import openai_chat, openai_responses
from tests.fakes.openai_answers import Answer, decide
from tests.fakes.openai_chat import Paced, split
from tests.fakes.openai_errors import common_headers, error_response
from tests.fakes.server import ThreadedServer

_SUFFIXES = (
    "no_usage",
    "cached",
    "slow",
    "linger",
    "flaky_429",
    "hang",
    "bad_json",
    "wrong_ctype",
    "reset_mid_stream",
    "stall_mid_stream",
    "huge",
)
_FAIL = re.compile(r"fail_(\d{3})$")
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small", "whisper-1", "fake-model")
"""What the fake's ``GET /v1/models`` lists by default (like the API, more than any one config routes)."""


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    t: float
    peer: object = None
    """The caller's address and port: one per connection."""


def embedding(text: str, dims: int) -> list[float]:
    """A deterministic vector for ``text``; its values are exact in float32, so base64 and floats agree."""
    digest = hashlib.sha256(text.encode()).digest() * (dims // 32 + 1)
    return [(digest[i] - 128) / 64 for i in range(dims)]


@dataclass
class FakeOpenAI:
    name: str = "fake"
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    chunks: int = 5
    chunk_delay: float = 0.0
    delay: float = 0.0
    content: str | None = None
    embedding_dims: int = 8
    model_ids: tuple[str, ...] = DEFAULT_MODELS
    behaviors: dict[str, str] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    cancelled: int = 0
    held: int = 0
    """Requests held in their delay (``slow`` or ``delay``) now (not a vLLM fake's reported ``waiting`` queue,
    which the test sets)."""
    stored_responses: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=dict)
    """The Responses API answers kept (``store`` not false), by id, with their input items: what
    ``previous_response_id`` may cite and ``GET``/``DELETE /v1/responses/{id}`` read."""
    stored_requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(method, path and query, headers) of each request to the stored-response endpoints."""
    abandoned: int = 0
    """Requests whose caller closed the connection during their delay (the gateway gave up on them)."""
    abandoned_models: Counter[str] = field(default_factory=Counter)
    """``abandoned`` by the model asked for."""
    abandoned_after: list[float] = field(default_factory=list)
    """For each abandoned request, the seconds from its arrival to the caller closing the connection."""
    completed_streams: int = 0
    active_streams: int = 0
    models_calls: int = 0
    answered_ids: list[str] = field(default_factory=list)
    """The ``x-request-id`` of each answer (errors too), in order."""
    server: ThreadedServer | None = None
    _flaky: dict[str, int] = field(default_factory=dict)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        self.server = ThreadedServer(self.app).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(self._headers)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_get("/v1/responses/{rid}", self.stored)
        app.router.add_delete("/v1/responses/{rid}", self.stored)
        app.router.add_get("/v1/responses/{rid}/input_items", self.stored)
        app.router.add_post("/v1/responses/{rid}/cancel", self.stored)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        return app

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        for k, v in common_headers().items():
            response.headers.setdefault(k, v)
        self.answered_ids.append(response.headers["x-request-id"])

    # -- helpers -------------------------------------------------------------------------------------------
    def behavior(self, model: str) -> str:
        if model in self.behaviors:
            return self.behaviors[model]
        m = _FAIL.search(model)
        if m:
            return m.group(0)
        for b in _SUFFIXES:
            if model.endswith(b):
                return b
        return "ok"

    def text(self, model: str) -> str:
        return self.content if self.content is not None else f"Hello from {self.name} ({model})"

    def usage(self, chat: bool = True) -> dict[str, Any]:
        if not chat:
            return openai_responses.usage(
                self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.reasoning_tokens
            )
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def answers(self, body: dict[str, Any], model: str, b: str) -> list[Answer]:
        text = "x" * (4 * 1024 * 1024) if b == "huge" else self.text(model)
        n = body.get("n")
        return [decide(body, text, i) for i in range(n if isinstance(n, int) and n > 0 else 1)]

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = orjson.loads(raw)
        self.requests.append(
            Seen(
                request.path,
                body,
                {k.lower(): v for k, v in request.headers.items()},
                time.time(),
                request.transport.get_extra_info("peername") if request.transport is not None else None,
            )
        )
        return body

    async def _pre(self, b: str, model: str, request: web.Request) -> web.Response | None:
        if b == "linger" and await self._abandoned_during(2.5, request):
            self.abandoned_models[model] += 1
            return web.Response(status=499)
        if (b == "slow" or self.delay) and await self._abandoned_during(self.delay or 0.5, request):
            self.abandoned_models[model] += 1
            return web.Response(status=499)
        m = _FAIL.match(b)
        if m:
            return error_response(int(m.group(1)), model)
        if b == "flaky_429":
            n = self._flaky[model] = self._flaky.get(model, 0) + 1
            if n % 2:
                return error_response(429, model, retry_after_s=0)
        if b == "hang":
            await asyncio.sleep(3600)
        if b == "bad_json":
            return web.Response(body=b'{"id": "x", "choices": [', content_type="application/json")
        if b == "wrong_ctype":
            return web.Response(body=b"<html>oops</html>", content_type="text/html")
        return None

    async def _abandoned_during(self, delay: float, request: web.Request) -> bool:
        """Wait ``delay`` seconds, watching the connection: True when the caller closed it meanwhile."""
        self.held += 1
        try:
            start = time.monotonic()
            end = start + delay
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(left, 0.01))
                t = request.transport
                if t is None or t.is_closing():
                    self.abandoned += 1
                    self.abandoned_after.append(time.monotonic() - start)
                    return True
            return False
        finally:
            self.held -= 1

    async def _begin(self, request: web.Request) -> tuple[dict[str, Any], str, str, web.Response | None]:
        body = await self._record(request)
        model = str(body.get("model", ""))
        b = self.behavior(model)
        return body, model, b, await self._pre(b, model, request)

    async def _stream(
        self, request: web.Request, events: list[Paced], b: str, named: bool = False
    ) -> web.StreamResponse:
        """Send ``events`` as SSE (``event:`` lines too when ``named``), applying the mid-stream faults."""
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        fault_at = max(1, len(events) // 2)
        self.active_streams += 1
        try:
            for i, (ev, paced) in enumerate(events):
                if paced and self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                if i == fault_at and b == "reset_mid_stream":
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if i == fault_at and b == "stall_mid_stream":
                    await asyncio.sleep(3600)
                head = f"event: {ev['type']}\n".encode() if named else b""
                await resp.write(head + b"data: " + orjson.dumps(ev) + b"\n\n")
            if not named:
                await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            self.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled += 1
            raise
        finally:
            self.active_streams -= 1
        return resp

    # -- endpoints ----------------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(self, request: web.Request) -> web.Response:
        self.models_calls += 1
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": self.name} for m in self.model_ids
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, model, b, early = await self._begin(request)
        if early is not None:
            return early
        answers = self.answers(body, model, b)
        usage = None if b == "no_usage" else self.usage()
        if body.get("stream"):
            return await self._stream(request, openai_chat.chunks(body, answers, usage, self.chunks), b)
        doc = openai_chat.completion(body, answers, usage, self.chunks)
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, model, b, early = await self._begin(request)
        if early is not None:
            return early
        base = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()), "model": model}
        if body.get("stream"):
            events: list[Paced] = [
                (
                    {
                        **base,
                        "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}],
                    },
                    True,
                )
                for piece in split(self.text(model), self.chunks)
            ]
            events.append(
                (
                    {
                        **base,
                        "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}],
                    },
                    False,
                )
            )
            if (body.get("stream_options") or {}).get("include_usage") and b != "no_usage":
                events.append(({**base, "choices": [], "usage": self.usage()}, False))
            return await self._stream(request, events, b)
        doc: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "text": self.text(model), "finish_reason": "stop", "logprobs": None}],
        }
        if b != "no_usage":
            doc["usage"] = self.usage()
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def embeddings(self, request: web.Request) -> web.Response:
        body, model, b, early = await self._begin(request)
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else self.embedding_dims
        data = []
        for i, text in enumerate(inputs):
            vec = embedding(str(text), dims)
            value: Any = vec
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        doc = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens},
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def stored(self, request: web.Request) -> web.Response:
        """The stored-response endpoints, as the API answers them (a response not kept is a 404)."""
        self.stored_requests.append((request.method, request.path_qs, dict(request.headers)))
        rid = request.match_info["rid"]
        kept = self.stored_responses.get(rid)
        if kept is None:
            error = {"message": f"Response with id '{rid}' not found.", "type": "invalid_request_error"}
            return web.json_response({"error": {**error, "param": None, "code": None}}, status=404)
        doc, items = kept
        if request.method == "DELETE":
            del self.stored_responses[rid]
            return web.json_response({"id": rid, "object": "response", "deleted": True})
        if request.path.endswith("/cancel"):  # only a background response can be
            error = {
                "message": "Only responses created with background=true can be cancelled.",
                "param": None,
            }
            return web.json_response(
                {"error": {**error, "type": "invalid_request_error", "code": None}}, status=400
            )
        if request.path.endswith("/input_items"):
            page = {"object": "list", "data": items, "has_more": False}
            return web.json_response({**page, "first_id": items[0]["id"], "last_id": items[-1]["id"]})
        return web.json_response(doc)

    def _unknown_item(self, given: Any) -> str | None:
        """The first input item citing a stored item (``item_reference``, or a reasoning item: the API resolves
        both by id) that no stored response holds, among its output or input items."""
        cited = [
            i["id"]
            for i in (given if isinstance(given, list) else ())
            if isinstance(i, dict)
            and i.get("type") in ("item_reference", "reasoning")
            and isinstance(i.get("id"), str)
        ]
        if not cited:
            return None
        kept = {
            item.get("id")
            for doc, items in self.stored_responses.values()
            for item in [*(doc.get("output") or []), *items]
        }
        return next((i for i in cited if i not in kept), None)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body, model, b, early = await self._begin(request)
        if early is not None:
            return early
        cited = body.get("previous_response_id")
        if (
            cited is not None and cited not in self.stored_responses
        ):  # the API's answer for an id it does not keep
            error = {
                "message": f"Previous response with id '{cited}' not found.",
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            }
            return web.json_response({"error": error}, status=404)
        missing = self._unknown_item(body.get("input"))
        if missing is not None:  # the API's answer for an item id it does not keep
            error = {
                "message": f"Item with id '{missing}' not found.",
                "type": "invalid_request_error",
                "param": "input",
                "code": None,
            }
            return web.json_response({"error": error}, status=404)
        rid = f"resp_{secrets.token_hex(24)}"
        answer = self.answers({**body, "n": 1}, model, b)[0]
        usage = None if b == "no_usage" else self.usage(chat=False)
        doc = openai_responses.response(body, answer, usage, self.chunks, rid=rid)
        if body.get("store", True) is not False:
            self.stored_responses[rid] = (doc, openai_responses.input_items(body, rid))
        if body.get("stream"):
            return await self._stream(
                request, openai_responses.events(body, answer, usage, self.chunks, rid), b, named=True
            )
        return web.Response(body=orjson.dumps(doc), content_type="application/json")
