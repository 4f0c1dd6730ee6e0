"""A fake OpenAI upstream with the faults ``FakeOpenAI`` lacks, at the wire level.

Model-name suffixes (on top of FakeOpenAI's ``slow``, ``fail_5xx``, ``fail_429``, ``hang``, ``bad_json``,
``wrong_ctype``, ``reset_mid_stream``, ``stall_mid_stream``, ``huge``):

- ``reset_mid_body``: a JSON response announced with its full ``content-length``, cut after a few bytes
  (the TCP connection is aborted);
- ``retry_after``: 429 with ``Retry-After: 7``;
- ``huge_stream``: a stream of 2,000 content chunks (~2 MiB), far longer than usual;
- ``slow_stream``: a stream whose first byte comes after ``FakeOpenAI.delay`` (or 0.5 s);
- ``no_done``: a complete-looking stream that ends (cleanly) without ``data: [DONE]``; on ``/v1/responses``,
  a stream that ends before its ``response.completed`` event;
- answers far larger than any limit, sized by the suffix (``_<n>k`` or ``_<n>m``, e.g. ``big_body_64m``):
  ``big_body`` (a JSON answer of that many bytes, chunked), ``gzip_body`` / ``deflate_body`` (the same,
  compressed, with its ``content-encoding`` and ``content-length``: a few hundred KiB on the wire), ``gzip_stream`` (a stream of that size, gzip'd),
  ``endless_event`` (a stream of one event that never gets its blank line), ``long_event`` (one event of that
  size, then ``[DONE]``), ``long_stream`` (1 KiB events adding up to that size, then usage and ``[DONE]``).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import openai_chat, openai_responses
from tests.fakes.openai_upstream import FakeOpenAI, Seen

_SIZED = re.compile(
    r"(big_body|gzip_body|deflate_body|gzip_stream|endless_event|long_event|long_stream)_(\d+)([km])$"
)
_PIECE = 64 * 1024


def sized(model: str) -> tuple[str, int] | None:
    """(kind, bytes) of a model name that asks for a sized answer (``fault-gzip_body_64m``), else None."""
    m = _SIZED.search(model)
    if m is None:
        return None
    return m.group(1), int(m.group(2)) * (1024 if m.group(3) == "k" else 1024 * 1024)


def big_completion(size: int) -> bytes:
    """A chat completion whose content makes the whole body ``size`` bytes (at least its frame)."""
    head = b'{"id":"chatcmpl-big","object":"chat.completion","created":1,"model":"big","choices":[{"index":0,'
    head += b'"message":{"role":"assistant","content":"'
    tail = (
        b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}'
    )
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


@functools.lru_cache(maxsize=4)
def encoded_completion(size: int, encoding: str) -> bytes:
    body = big_completion(size)
    if encoding == "gzip":
        return gzip.compress(body, 6)
    if encoding == "deflate":
        return zlib.compress(body, 6)
    return body


def chat_chunk(content: str, finish: str | None = None) -> bytes:
    doc = {
        "id": "chatcmpl-long",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "long",
        "choices": [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def long_stream(size: int) -> Iterator[bytes]:
    """1 KiB content events adding up to about ``size`` bytes, the finish chunk, usage and ``[DONE]``, in
    writes of about 64 KiB."""
    event = chat_chunk("y" * 1024)
    per_write = max(1, _PIECE // len(event))
    n = max(1, size // len(event))
    for start in range(0, n, per_write):
        yield event * min(per_write, n - start)
    usage = {"prompt_tokens": 11, "completion_tokens": n, "total_tokens": 11 + n}
    tail = chat_chunk("", "stop")
    tail += b'data: {"id":"chatcmpl-long","object":"chat.completion.chunk","created":1,"model":"long",'
    tail += b'"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\ndata: [DONE]\n\n"
    yield tail


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
        size = sized(model)
        if size is not None:
            self._seen(request, body)
            return await self._sized(request, *size)
        if model.endswith("no_done") and body.get("stream"):
            self._seen(request, body)
            events = openai_chat.chunks(body, self.answers(body, model, "ok"), self.usage(), self.chunks)
            return await self._send_stream(
                request, [b"data: " + orjson.dumps(ev) + b"\n\n" for ev, _ in events]
            )
        return await super().chat(request)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        model = str(body.get("model", ""))
        if model.endswith("no_done") and body.get("stream"):
            self._seen(request, body)
            answer = self.answers({**body, "n": 1}, model, "ok")[0]
            events = openai_responses.events(body, answer, self.usage(chat=False), self.chunks)[:-1]
            frames = [
                f"event: {ev['type']}\n".encode() + b"data: " + orjson.dumps(ev) + b"\n\n" for ev, _ in events
            ]
            return await self._send_stream(request, frames)
        return await super().responses(request)

    async def _send_stream(
        self, request: web.Request, frames: Any, encoding: str | None = None
    ) -> web.StreamResponse:
        headers = {"content-type": "text/event-stream"}
        if encoding:
            headers["content-encoding"] = encoding
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        squeeze = zlib.compressobj(6, zlib.DEFLATED, 31) if encoding == "gzip" else None
        try:
            for frame in frames:
                await resp.write(squeeze.compress(frame) if squeeze is not None else frame)
            if squeeze is not None:
                await resp.write(squeeze.flush())
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.cancelled += 1  # the gateway hung up (it refused the answer, or its client left)
        return resp

    async def _sized(self, request: web.Request, kind: str, size: int) -> web.StreamResponse:
        if kind in ("big_body", "gzip_body", "deflate_body"):
            encoding = {"gzip_body": "gzip", "deflate_body": "deflate"}.get(kind)
            headers = {"content-type": "application/json"}
            if encoding:
                headers["content-encoding"] = encoding
            data = encoded_completion(size, encoding or "identity")
            resp = web.StreamResponse(headers=headers)
            if encoding:
                resp.content_length = len(data)  # big_body is chunked: its size shows only as it is read
            await resp.prepare(request)
            try:
                for at in range(0, len(data), _PIECE):
                    await resp.write(data[at : at + _PIECE])
                await resp.write_eof()
            except (ConnectionError, asyncio.CancelledError):
                self.cancelled += 1
            return resp
        if kind in ("long_stream", "gzip_stream"):
            return await self._send_stream(
                request, long_stream(size), "gzip" if kind == "gzip_stream" else None
            )
        opening = b'data: {"id":"chatcmpl-long","object":"chat.completion.chunk","created":1,"model":"long",'
        opening += b'"choices":[{"index":0,"delta":{"content":"'
        pieces = (b"z" * _PIECE for _ in range(max(1, size // _PIECE)))
        if kind == "endless_event":
            return await self._send_stream(request, [opening, *pieces])
        closing = b'"},"finish_reason":null}]}\n\n' + chat_chunk("", "stop") + b"data: [DONE]\n\n"
        return await self._send_stream(request, [opening, *pieces, closing])

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
    each body it was sent, by the request id the gateway sends upstream (``raw_bodies``; the last 1,000).

    Its JSON answers take turns in how they arrive — plain, gzip or deflate-compressed, and every fifth padded
    with 2 MiB of whitespace (still the same JSON; 2 KiB compressed) — so that every fuzz profile through it
    also exercises large and compressed upstream answers."""

    raw_bodies: dict[str, bytes] = field(default_factory=dict)
    answered: int = 0

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
        return self._reshape(resp)

    def _reshape(self, resp: web.StreamResponse) -> web.StreamResponse:
        if not isinstance(resp, web.Response) or resp.status != 200 or not isinstance(resp.body, bytes):
            return resp
        if resp.content_type != "application/json":
            return resp
        self.answered += 1
        body = resp.body + (b" " * (2 * 1024 * 1024) if self.answered % 5 == 0 else b"")
        encoding = ("identity", "gzip", "deflate")[self.answered % 3]
        if encoding != "identity":
            body = gzip.compress(body, 6) if encoding == "gzip" else zlib.compress(body, 6)
        out = web.Response(body=body, status=200, content_type="application/json")
        if encoding != "identity":
            out.headers["content-encoding"] = encoding
        return out
