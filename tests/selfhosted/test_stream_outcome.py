"""A client that hangs up right after ``data: [DONE]`` got the whole stream: accounted as ``ok``, not as a
cancelled request. (vLLM, like many servers, ends the HTTP body a moment after sending ``[DONE]``; the OpenAI
SDK closes the connection as soon as it reads ``[DONE]``. Found by the real-vLLM tier.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.server import ThreadedServer
from tests.gateway_runner import RunningGateway


def _lingering_app() -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        for piece in ("Hel", "lo"):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        await resp.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await asyncio.sleep(0.5)  # the body ends a while after [DONE]
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.fixture
def upstream_url() -> Iterator[str]:
    srv = ThreadedServer(_lingering_app).start()
    yield srv.url + "/v1"
    srv.stop()


def test_hanging_up_after_done_is_not_a_cancellation(upstream_url: str) -> None:
    cfg = {
        "admin_key": ADMIN_KEY,
        "backends": {"up": {"type": "openai", "base_url": upstream_url}},
        "models": {"m": {"backend": "up"}},
        "keys": [{"name": "app", "key": CLIENT_KEY}],
        "accounting": {"ledger": {"flush_interval_s": 0.1}},
    }
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        for _ in range(3):
            with c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            ) as st:
                assert "".join(ch.choices[0].delta.content or "" for ch in st if ch.choices) == "Hello"
        time.sleep(0.8)  # the gateway notices the hang-ups while the upstream is still open
        spend = httpx.get(
            gw.url + "/admin/spend",
            params={"group_by": "day"},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ).json()["total"]
        assert (spend["requests"], spend["failed_requests"]) == (3, 0), spend
        assert (spend["input_tokens"], spend["output_tokens"]) == (15, 6)
        cancelled = httpx.get(
            gw.url + "/admin/spend",
            params={"outcome": "cancelled"},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ).json()["total"]
        assert cancelled["requests"] == 0
