"""A fake Anthropic Messages API upstream (``POST /v1/messages``), streaming and not, over real HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import ThreadedServer


@dataclass
class FakeAnthropic:
    input_tokens: int = 13
    """Uncached input tokens (Anthropic counts cache reads and writes apart from them)."""
    output_tokens: int = 9
    cache_read_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    text: str = "Bonjour from Claude"
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
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
        """A gateway config that sends ``claude-*`` to this fake through litellm."""
        backend = {"type": "litellm", "provider": "anthropic", "api_key": "sk-ant-test", "api_base": self.url}
        return {
            "backends": {"anthropic": backend},
            "models": {"claude-*": {"backend": "anthropic"}},
            "keys": [{"name": "app", "key": client_key}],
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        return app

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if request.headers.get("x-api-key") != "sk-ant-test":
            return web.json_response(
                {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
                status=401,
            )
        model = body["model"]
        if model.endswith("overloaded"):
            return web.json_response(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, status=529
            )
        usage: dict[str, Any] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        writes = self.cache_write_5m_tokens + self.cache_write_1h_tokens
        if writes or self.cache_read_input_tokens:
            usage["cache_read_input_tokens"] = self.cache_read_input_tokens
            usage["cache_creation_input_tokens"] = writes
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": self.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            }
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": self.text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)

        async def ev(kind: str, data: dict[str, Any]) -> None:
            await resp.write(
                f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"
            )

        await ev(
            "message_start",
            {
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                }
            },
        )
        await ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        for word in self.text.split(" "):
            await ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word + " "}})
        await ev("content_block_stop", {"index": 0})
        await ev(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": self.output_tokens},
            },
        )
        await ev("message_stop", {})
        await resp.write_eof()
        _ = time.time()
        return resp
