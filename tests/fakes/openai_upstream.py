"""A fake OpenAI-compatible upstream speaking the real wire protocol over HTTP.

Behaviour is chosen per request by the model name's suffix or by ``FakeOpenAI.behaviors[model]``:
ok (default), no_usage, cached, slow (first byte after ``delay``), fail_500, fail_502, fail_503, fail_429,
fail_400, hang, bad_json, wrong_ctype, reset_mid_stream, stall_mid_stream, huge, invalid_json_content.
Every request is recorded; stream cancellations seen by the upstream are counted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import ThreadedServer


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    t: float


@dataclass
class FakeOpenAI:
    name: str = "fake"
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0
    chunks: int = 5
    chunk_delay: float = 0.0
    delay: float = 0.0
    content: str | None = None
    behaviors: dict[str, str] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    cancelled: int = 0
    completed_streams: int = 0
    active_streams: int = 0
    server: ThreadedServer | None = None

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
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        return app

    # -- helpers -------------------------------------------------------------------------------------------
    def behavior(self, model: str) -> str:
        if model in self.behaviors:
            return self.behaviors[model]
        for b in ("no_usage", "cached", "slow", "fail_500", "fail_502", "fail_503", "fail_429", "fail_400",
                  "hang", "bad_json", "wrong_ctype", "reset_mid_stream", "stall_mid_stream", "huge"):
            if model.endswith(b):
                return b
        return "ok"

    def text(self, model: str) -> str:
        return self.content if self.content is not None else f"Hello from {self.name} ({model})"

    def usage(self, chat: bool = True) -> dict[str, Any]:
        u: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens:
            u["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return u

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = orjson.loads(raw)
        self.requests.append(Seen(request.path, body, {k.lower(): v for k, v in request.headers.items()}, time.time()))
        return body

    async def _pre(self, b: str) -> web.Response | None:
        if b == "slow" or self.delay:
            await asyncio.sleep(self.delay or 0.5)
        if b.startswith("fail_"):
            status = int(b[5:])
            headers = {"retry-after": "1"} if status == 429 else {}
            return web.json_response(
                {"error": {"message": f"fake {status}", "type": "server_error" if status >= 500 else "invalid_request_error", "param": None, "code": None}},
                status=status,
                headers=headers,
            )
        if b == "hang":
            await asyncio.sleep(3600)
        if b == "bad_json":
            return web.Response(body=b'{"id": "x", "choices": [', content_type="application/json")
        if b == "wrong_ctype":
            return web.Response(body=b"<html>oops</html>", content_type="text/html")
        return None

    # -- endpoints ----------------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": self.name}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body.get("model", "")
        b = self.behavior(model)
        early = await self._pre(b)
        if early is not None:
            return early
        if body.get("stream"):
            return await self._chat_stream(request, body, b)
        text = self.text(model)
        if b == "huge":
            text = "x" * (4 * 1024 * 1024)
        n = int(body.get("n") or 1)
        doc: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
                for i in range(n)
            ],
        }
        if body.get("tools"):
            doc["choices"][0]["message"] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": body["tools"][0]["function"]["name"], "arguments": '{"x": 1}'}}],
            }
            doc["choices"][0]["finish_reason"] = "tool_calls"
        if b != "no_usage":
            doc["usage"] = self.usage()
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def _chat_stream(self, request: web.Request, body: dict[str, Any], b: str) -> web.StreamResponse:
        model = body["model"]
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and b != "no_usage"
        pieces = _split(self.text(model), self.chunks)
        self.active_streams += 1
        try:
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
            first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
            if include_usage:
                first["usage"] = None
            await resp.write(b"data: " + orjson.dumps(first) + b"\n\n")
            for i, piece in enumerate(pieces):
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                if b == "reset_mid_stream" and i == len(pieces) // 2:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if b == "stall_mid_stream" and i == len(pieces) // 2:
                    await asyncio.sleep(3600)
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                if include_usage:
                    chunk["usage"] = None
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            if include_usage:
                last["usage"] = None
            await resp.write(b"data: " + orjson.dumps(last) + b"\n\n")
            if include_usage:
                await resp.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": self.usage()}) + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            self.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled += 1
            raise
        finally:
            self.active_streams -= 1
        return resp

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body.get("model", "")
        b = self.behavior(model)
        early = await self._pre(b)
        if early is not None:
            return early
        base = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()), "model": model}
        if body.get("stream"):
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for piece in _split(self.text(model), self.chunks):
                await resp.write(b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "text": piece, "finish_reason": None}]}) + b"\n\n")
            if (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": self.usage()}) + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        doc = {**base, "choices": [{"index": 0, "text": self.text(model), "finish_reason": "stop", "logprobs": None}], "usage": self.usage()}
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        b = self.behavior(body.get("model", ""))
        early = await self._pre(b)
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))]
        return web.json_response({"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}})

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body.get("model", "")
        b = self.behavior(model)
        early = await self._pre(b)
        if early is not None:
            return early
        text = self.text(model)
        usage = {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens, "total_tokens": self.prompt_tokens + self.completion_tokens,
                 "input_tokens_details": {"cached_tokens": self.cached_tokens}, "output_tokens_details": {"reasoning_tokens": 0}}
        msg = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
        full = {"id": "resp_fake", "object": "response", "created_at": int(time.time()), "model": model, "status": "completed",
                "output": [msg], "usage": usage, "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(full), content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        seq = 0

        async def ev(kind: str, data: dict[str, Any]) -> None:
            nonlocal seq
            data = {"type": kind, "sequence_number": seq, **data}
            seq += 1
            await resp.write(f"event: {kind}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n")

        created = {**full, "status": "in_progress", "output": [], "usage": None}
        await ev("response.created", {"response": created})
        await ev("response.output_item.added", {"output_index": 0, "item": {**msg, "status": "in_progress", "content": []}})
        await ev("response.content_part.added", {"output_index": 0, "content_index": 0, "item_id": "msg_1", "part": {"type": "output_text", "text": "", "annotations": []}})
        for piece in _split(text, self.chunks):
            await ev("response.output_text.delta", {"output_index": 0, "content_index": 0, "item_id": "msg_1", "delta": piece, "logprobs": []})
        await ev("response.output_text.done", {"output_index": 0, "content_index": 0, "item_id": "msg_1", "text": text, "logprobs": []})
        await ev("response.content_part.done", {"output_index": 0, "content_index": 0, "item_id": "msg_1", "part": msg["content"][0]})
        await ev("response.output_item.done", {"output_index": 0, "item": msg})
        await ev("response.completed", {"response": full})
        await resp.write_eof()
        return resp


def _split(text: str, n: int) -> list[str]:
    if n <= 1 or len(text) < n:
        return [text]
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]
