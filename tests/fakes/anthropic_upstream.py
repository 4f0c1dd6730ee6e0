"""A fake Anthropic Messages API upstream (``POST /v1/messages``, ``/v1/messages/count_tokens``), streaming and
not, over real HTTP.

Every request is checked against the published request shape (``anthropic_shape``: a 400
``invalid_request_error`` naming the field, as the API answers) and recorded with its headers. Answers depend on
the request: a thinking block first when ``thinking`` is enabled; with tools offered (and ``tool_choice`` not
``none``) and no tool result in the last turn, some text and a ``tool_use`` of the chosen (else the first) tool
with ``tool_input``; after a tool result, text quoting it; otherwise ``text``. Streams send Anthropic's full event
sequence (``message_start``, ``ping``, content blocks with text, thinking, signature and JSON deltas,
``message_delta`` with usage, ``message_stop``). A model ending in ``overloaded`` answers 529, one ending in
``midstream`` sends an ``error`` event after its first block's delta; a model in ``FakeAnthropic.canned`` gets
that answer (status, body bytes as they are, headers). Every answer carries Anthropic's ``request-id``
(``req_…``, recorded in ``answered_ids``) and ``anthropic-ratelimit-*`` headers (``RATE_LIMITS``), unless a
canned answer sets its own. Header lines are recorded as sent (``lines``), repeated ones apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.anthropic_shape import Invalid, check_headers, check_request
from tests.fakes.server import ThreadedServer

TOOL_INPUT: dict[str, Any] = {"city": "Paris", "units": "celsius"}
RATE_LIMITS = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z",
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "399000",
    "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:01Z",
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "79000",
    "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:01Z",
    "anthropic-ratelimit-tokens-limit": "480000",
    "anthropic-ratelimit-tokens-remaining": "478000",
    "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:01Z",
}
"""The rate-limit headers every answer carries, as Anthropic's API names them."""
_ids = itertools.count(1)


def _error(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": type_, "message": message}}, status=status)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, dict))


@dataclass
class FakeAnthropic:
    input_tokens: int = 13
    """Uncached input tokens (Anthropic counts cache reads and writes apart from them)."""
    output_tokens: int = 9
    cache_read_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    text: str = "Bonjour from Claude"
    tool_input: dict[str, Any] = field(default_factory=lambda: dict(TOOL_INPUT))
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lines: list[list[tuple[str, str]]] = field(default_factory=list)
    """Each request's header lines, in order, as sent (a header sent on several lines is several entries)."""
    canned: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    """Answers by model: (status, body sent byte for byte as JSON, headers)."""
    counted: list[dict[str, Any]] = field(default_factory=list)
    answered_ids: list[str] = field(default_factory=list)
    """The ``request-id`` of each answer (errors too), in order."""
    server: ThreadedServer | None = None

    def start(self) -> FakeAnthropic:
        self.server = ThreadedServer(self.app).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def gateway_config(self, client_key: str) -> dict[str, Any]:
        """A gateway config that sends ``claude-*`` to this fake (through litellm for Chat Completions, as it is
        for the Messages API)."""
        backend = {"type": "litellm", "provider": "anthropic", "api_key": "sk-ant-test", "api_base": self.url}
        return {
            "backends": {"anthropic": backend},
            "models": {"claude-*": {"backend": "anthropic"}},
            "keys": [{"name": "app", "key": client_key}],
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.on_response_prepare.append(self._headers)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        return app

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("request-id", f"req_fake{next(_ids):020x}")
        for k, v in RATE_LIMITS.items():
            response.headers.setdefault(k, v)
        self.answered_ids.append(response.headers["request-id"])

    async def _checked(self, request: web.Request, counting: bool) -> dict[str, Any] | web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request_error", "body: invalid JSON")
        self.headers.append(dict(request.headers))
        self.lines.append([(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers])
        (self.counted if counting else self.requests).append(body)
        if request.headers.get("x-api-key") != "sk-ant-test":
            return _error(401, "authentication_error", "invalid x-api-key")
        try:
            check_headers(request.headers)
            check_request(body, counting)
        except Invalid as exc:
            return _error(400, "invalid_request_error", str(exc))
        return body  # type: ignore[no-any-return]

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = await self._checked(request, counting=True)
        if isinstance(body, web.Response):
            return body
        words = len(_text_of(body.get("system")).split()) + sum(
            len(_text_of(m["content"]).split()) for m in body["messages"]
        )
        return web.json_response({"input_tokens": 3 + words})

    def _usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        writes = self.cache_write_5m_tokens + self.cache_write_1h_tokens
        if writes or self.cache_read_input_tokens:
            usage["cache_read_input_tokens"] = self.cache_read_input_tokens
            usage["cache_creation_input_tokens"] = writes
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": self.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            }
        return usage

    def answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """(content blocks, stop reason) for a request."""
        blocks: list[dict[str, Any]] = []
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            blocks.append({"type": "thinking", "thinking": "Let me think.", "signature": "sig-fake"})
        last = body["messages"][-1]["content"]
        results = [b for b in last if b.get("type") == "tool_result"] if isinstance(last, list) else []
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {"type": "auto"}
        if results:
            said = " ".join(_text_of(r.get("content")) for r in results)
            blocks.append({"type": "text", "text": f"The tool said: {said}"})
            return blocks, "end_turn"
        if tools and choice.get("type") != "none":
            name = choice.get("name") if choice.get("type") == "tool" else tools[0]["name"]
            blocks.append({"type": "text", "text": "Let me check."})
            blocks.append({"type": "tool_use", "id": "toolu_fake_1", "name": name, "input": self.tool_input})
            return blocks, "tool_use"
        blocks.append({"type": "text", "text": self.text})
        return blocks, "end_turn"

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._checked(request, counting=False)
        if isinstance(body, web.Response):
            return body
        model = body["model"]
        if model in self.canned:
            status, raw, headers = self.canned[model]
            return web.Response(status=status, body=raw, content_type="application/json", headers=headers)
        if model.endswith("overloaded"):
            return _error(529, "overloaded_error", "Overloaded")
        blocks, stop = self.answer(body)
        usage = self._usage()
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return web.json_response(message)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)

        async def ev(kind: str, data: dict[str, Any]) -> None:
            await resp.write(
                f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"
            )

        start_usage = {**usage, "output_tokens": 1}
        await ev(
            "message_start",
            {"message": {**message, "content": [], "stop_reason": None, "usage": start_usage}},
        )
        await ev("ping", {})
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                await ev("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                words = b["text"].split(" ")
                for k, word in enumerate(words):
                    piece = word if k == len(words) - 1 else word + " "
                    await ev(
                        "content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": piece}}
                    )
                    if model.endswith("midstream"):
                        await ev("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
                        await resp.write_eof()
                        return resp
            elif b["type"] == "thinking":
                await ev(
                    "content_block_start", {"index": i, "content_block": {"type": "thinking", "thinking": ""}}
                )
                await ev(
                    "content_block_delta",
                    {"index": i, "delta": {"type": "thinking_delta", "thinking": b["thinking"]}},
                )
                await ev(
                    "content_block_delta",
                    {"index": i, "delta": {"type": "signature_delta", "signature": b["signature"]}},
                )
            else:
                start = {**b, "input": {}}
                await ev("content_block_start", {"index": i, "content_block": start})
                raw = orjson.dumps(b["input"]).decode()
                for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                    await ev(
                        "content_block_delta",
                        {"index": i, "delta": {"type": "input_json_delta", "partial_json": piece}},
                    )
            await ev("content_block_stop", {"index": i})
        await ev(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": self.output_tokens},
            },
        )
        await ev("message_stop", {})
        await resp.write_eof()
        return resp
