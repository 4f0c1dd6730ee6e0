"""A fake OpenAI-compatible upstream serving several models of known behaviour, for shadow tests.

Each model (by the upstream model name) has a ``ModelSpec``: how long before its first byte (``delay_s``), how
long between streamed chunks, its token usage, which items it answers with invalid JSON, and a mode that can be
switched while the test runs (``ok``, ``fail`` (HTTP 500), ``hang``). Requests carry ``item N`` in the last user
message; answers are ``{"item": N, "label": "..."}``. Everything the fake did is in ``log`` (model, item, stream,
status, valid JSON or not), so tests compare the report with what actually happened.

``judge``-mode models act as an LLM judge. ``judge_mode`` ``honest`` prefers the answer that is valid JSON (tie
when both or neither are), with ``judge_noise`` the share of calls answered at random instead; ``first`` always
answers "1" (a purely position-biased judge; also ``judge_bias``), ``second`` always "2", ``tie`` always "tie",
``random`` at random. Random choices are seeded by the prompt's CRC-32, so a prompt always gets the same answer.
Every judge call is in ``judge_calls`` (both answers as shown, and the verdict given). ``/v1/embeddings``
returns letter-frequency vectors, so identical texts have cosine 1.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import ThreadedServer

_ITEM = re.compile(r"item (\d+)")
_ANSWERS = re.compile(r"\[Answer 1\]\n(.*?)\n\n\[Answer 2\]\n(.*?)\n\nWhich answer is better\?", re.DOTALL)


@dataclass
class ModelSpec:
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunks: int = 4
    prompt_tokens: int = 20
    completion_tokens: int = 10
    invalid_every: int | None = None
    """Items with ``item % invalid_every == 0`` get a truncated (invalid JSON) answer."""
    mode: str = "ok"
    """ok, fail (HTTP 500), hang."""
    judge: bool = False
    judge_bias: bool = False
    judge_mode: str = "honest"
    """honest, first, second, tie, random."""
    judge_noise: float = 0.0
    """honest: the share of calls answered at random."""
    label: str = "positive"


@dataclass
class Served:
    model: str
    item: int | None
    stream: bool
    status: int
    valid_json: bool
    t: float


def item_of(body: dict[str, Any]) -> int | None:
    msgs = body.get("messages") or []
    text = msgs[-1].get("content", "") if msgs and isinstance(msgs[-1], dict) else ""
    m = _ITEM.search(text if isinstance(text, str) else "")
    return int(m.group(1)) if m else None


@dataclass
class JudgeCall:
    model: str
    first: str
    """The answer shown in slot 1."""
    second: str
    winner: str


@dataclass
class ModelZoo:
    models: dict[str, ModelSpec] = field(default_factory=dict)
    log: list[Served] = field(default_factory=list)
    judge_prompts: list[str] = field(default_factory=list)
    judge_calls: list[JudgeCall] = field(default_factory=list)
    server: ThreadedServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ModelZoo:
        self.server = ThreadedServer(self.app).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    def served(self, model: str) -> list[Served]:
        with self._lock:
            return [s for s in self.log if s.model == model]

    def _note(self, s: Served) -> None:
        with self._lock:
            self.log.append(s)

    # -- chat ---------------------------------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        spec = self.models.get(model)
        if spec is None:
            return web.json_response(
                {
                    "error": {
                        "message": f"no model {model}",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                        "param": None,
                    }
                },
                status=404,
            )
        if spec.judge:
            return await self._judge(body, spec)
        item = item_of(body)
        stream = bool(body.get("stream"))
        if spec.delay_s:
            await asyncio.sleep(spec.delay_s)
        if spec.mode == "hang":
            await asyncio.sleep(3600)
        if spec.mode == "fail":
            self._note(Served(model, item, stream, 500, False, time.time()))
            return web.json_response(
                {"error": {"message": "fake failure", "type": "server_error", "code": None, "param": None}},
                status=500,
            )
        valid = not (spec.invalid_every and item is not None and item % spec.invalid_every == 0)
        text = orjson.dumps({"item": item, "label": spec.label}).decode()
        if not valid:
            text = text[: len(text) // 2]
        usage = {
            "prompt_tokens": spec.prompt_tokens,
            "completion_tokens": spec.completion_tokens,
            "total_tokens": spec.prompt_tokens + spec.completion_tokens,
        }
        self._note(Served(model, item, stream, 200, valid, time.time()))
        if not stream:
            return web.json_response(
                {
                    "id": "chatcmpl-zoo",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        base = {
            "id": "chatcmpl-zoo",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        await resp.write(
            b"data: "
            + orjson.dumps(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                    ],
                }
            )
            + b"\n\n"
        )
        size = -(-len(text) // spec.chunks)
        for i in range(0, len(text), size):
            if spec.chunk_delay_s:
                await asyncio.sleep(spec.chunk_delay_s)
            await resp.write(
                b"data: "
                + orjson.dumps(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": text[i : i + size]}, "finish_reason": None}
                        ],
                    }
                )
                + b"\n\n"
            )
        await resp.write(
            b"data: "
            + orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            + b"\n\n"
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _judge(self, body: dict[str, Any], spec: ModelSpec) -> web.Response:
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.judge_prompts.append(prompt)
        m = _ANSWERS.search(prompt)
        rng = random.Random(zlib.crc32(prompt.encode()))
        mode = "first" if spec.judge_bias or m is None else spec.judge_mode
        if mode == "honest" and rng.random() < spec.judge_noise:
            mode = "random"
        if mode == "random":
            winner = rng.choice(["1", "2", "tie"])
        elif mode in ("first", "second", "tie"):
            winner = {"first": "1", "second": "2", "tie": "tie"}[mode]
        else:
            assert m is not None
            ok = [_valid(m.group(1)), _valid(m.group(2))]
            winner = "tie" if ok[0] == ok[1] else ("1" if ok[0] else "2")
        if m is not None:
            with self._lock:
                self.judge_calls.append(JudgeCall(body["model"], m.group(1), m.group(2), winner))
        content = orjson.dumps({"winner": winner, "reason": "fake judge"}).decode()
        return web.json_response(
            {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
            }
        )

    # -- embeddings ---------------------------------------------------------------------------------------------
    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": letters(t)} for i, t in enumerate(inputs)]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }
        )


def _valid(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def letters(text: str) -> list[float]:
    v = [0.0] * 26
    for ch in text.lower():
        if "a" <= ch <= "z":
            v[ord(ch) - 97] += 1
    return v
