"""A fake OpenAI upstream with the faults ``FakeOpenAI`` lacks, at the wire level.

Model-name suffixes (on top of FakeOpenAI's ``slow``, ``fail_5xx``, ``fail_429``, ``hang``, ``bad_json``,
``wrong_ctype``, ``reset_mid_stream``, ``stall_mid_stream``, ``huge``):

- ``reset_mid_body``: a JSON response announced with its full ``content-length``, cut after a few bytes
  (the TCP connection is aborted);
- ``retry_after``: 429 with ``Retry-After: 7``;
- ``huge_stream``: a stream of 2,000 content chunks (~2 MiB), far longer than usual;
- ``slow_stream``: a stream whose first byte comes after ``FakeOpenAI.delay`` (or 0.5 s).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAI, Seen


@dataclass
class FaultyOpenAI(FakeOpenAI):
    huge_chunks: int = 2000

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = {}
        model = str(body.get("model", ""))
        if model.endswith("reset_mid_body"):
            self._seen(request, body)
            resp = web.StreamResponse(headers={"content-type": "application/json", "content-length": "4096"})
            await resp.prepare(request)
            await resp.write(b'{"id": "chatcmpl-cut", "object": "chat.completion", "choices": [')
            await asyncio.sleep(0.01)
            assert request.transport is not None
            request.transport.abort()
            return resp
        if model.endswith("retry_after"):
            self._seen(request, body)
            return web.json_response(
                {
                    "error": {
                        "message": "slow down",
                        "type": "rate_limit_error",
                        "param": None,
                        "code": "rate_limit",
                    }
                },
                status=429,
                headers={"retry-after": "7"},
            )
        if model.endswith("huge_stream") and body.get("stream"):
            self._seen(request, body)
            return await self._huge_stream(request, body)
        if model.endswith("slow_stream") and body.get("stream"):
            await asyncio.sleep(self.delay or 0.5)
        return await super().chat(request)

    def _seen(self, request: web.Request, body: dict[str, Any]) -> None:
        self.requests.append(
            Seen(request.path, body, {k.lower(): v for k, v in request.headers.items()}, time.time())
        )

    async def _huge_stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        base = {
            "id": "chatcmpl-huge",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
        }
        piece = "y" * 1024
        for _ in range(self.huge_chunks):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await resp.write(
            b"data: "
            + orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            + b"\n\n"
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.huge_chunks,
                "total_tokens": self.prompt_tokens + self.huge_chunks,
            }
            await resp.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _bad_request(message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}},
        status=400,
    )


@dataclass
class RobustOpenAI(FakeOpenAI):
    """A fake that, like the real API, answers 400 to any request it cannot make sense of (FakeOpenAI assumes
    well-formed bodies). Fuzzing through it, any 5xx the client sees is the gateway's own. It keeps the bytes of
    each body it was sent, by the request id the gateway sends upstream (``raw_bodies``; the last 1,000)."""

    raw_bodies: dict[str, bytes] = field(default_factory=dict)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._guard(super().chat, request)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._guard(super().completions, request)

    async def embeddings(self, request: web.Request) -> web.Response:
        resp = await self._guard(super().embeddings, request)
        assert isinstance(resp, web.Response)
        return resp

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self._guard(super().responses, request)

    async def _guard(self, handler: Any, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if len(self.raw_bodies) >= 1000:
            del self.raw_bodies[next(iter(self.raw_bodies))]
        self.raw_bodies[request.headers.get("x-request-id", "")] = raw
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _bad_request("invalid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _bad_request("model is required")
        if request.path.endswith("/embeddings") and not isinstance(body.get("input"), str | list):
            return _bad_request("input must be a string or an array")
        try:
            resp: web.StreamResponse = await handler(request)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            return _bad_request(f"bad request: {exc!r}"[:200])
        return resp
