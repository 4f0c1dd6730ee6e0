"""The ``simulated`` backend: a model served in-process, with a real model's latency, speed, errors and quality.

Answers are deterministic (``text``); the first token waits a log-normal time (``first_token``), the rest
follow at ``tokens_per_s``, a fraction ``error_rate`` of calls fail with ``error_status``, and a call slower
than its budget times out like an upstream would. Latencies and errors come from a generator seeded by
``seed``, so a run with the same traffic replays the same way.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import orjson

from serving.backend import BackendInfo, UpstreamCall, UpstreamResponse
from serving.config import SimulatedBackendConfig
from serving.errors import BackendOverloaded, UpstreamHTTPError, UpstreamTimeout
from serving.simulated import shapes, text
from wire.endpoints import EMBEDDINGS, RESPONSES, STREAMABLE, USAGE_OPTION
from wire.errors import error_body

_Z95 = 1.6448536269514722
"""The standard normal's 95th percentile (a log-normal's p95 is ``median * exp(sigma * _Z95)``)."""
_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


class SimulatedStream:
    __slots__ = ("_events", "_backend", "_gap_s", "_deadline", "endpoint", "_closed")

    headers: Sequence[tuple[bytes, bytes]] = ()
    """None: nothing came over HTTP."""

    def __init__(
        self, events: Iterator[tuple[bytes, bool]], backend: SimulatedBackend, gap_s: float, deadline: float
    ) -> None:
        self._events = events
        self._backend = backend
        self._gap_s = gap_s
        self._deadline = deadline
        self.endpoint = backend.info.endpoints[0]
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        for event, paced in self._events:
            if paced and self._gap_s:
                if loop.time() + self._gap_s > self._deadline:
                    raise UpstreamTimeout("simulated model timed out", backend=self._backend.name)
                await asyncio.sleep(self._gap_s)
            yield event

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.in_flight -= 1


class SimulatedBackend:
    """A ``serving.backend.Backend`` that answers from ``serving.simulated.text`` instead of a network."""

    def __init__(self, name: str, cfg: SimulatedBackendConfig) -> None:
        self.name = name
        self.cfg = cfg
        self.info = BackendInfo(
            name=name, type="simulated", self_hosted=cfg.self_hosted, endpoints=[f"simulated:{name}"]
        )
        self.accepts_metadata = True
        self.speaks_messages = False
        self.in_flight = 0
        self.calls = 0
        self._rng = random.Random(cfg.seed)
        m = cfg.first_token.median_ms
        self._mu = math.log(m / 1000) if m > 0 else None
        self._sigma = math.log(cfg.first_token.p95_ms / m) / _Z95 if m > 0 else 0.0

    def reachable(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_models(self) -> list[str]:
        return list(self.cfg.served_models)

    def first_token_s(self) -> float:
        """One draw from the time-to-first-token distribution, in seconds."""
        if self._mu is None:
            return 0.0
        return math.exp(self._rng.gauss(self._mu, self._sigma))

    def _enter(self, call: UpstreamCall) -> float:
        """Admit one call; returns its time to first token (raises the simulated error for failing calls)."""
        cap = self.cfg.max_concurrency
        if cap is not None and self.in_flight >= cap:
            raise BackendOverloaded(f"backend {self.name} is at its concurrency limit", backend=self.name)
        self.calls += 1
        wait = self.first_token_s()
        if self._rng.random() < self.cfg.error_rate:
            status = self.cfg.error_status
            body = error_body(f"simulated upstream error ({status})", "api_error", "simulated_error")
            raise UpstreamHTTPError(status, body, backend=self.name, endpoint=self.info.endpoints[0])
        return wait

    def _words(self, call: UpstreamCall, body: dict[str, Any]) -> tuple[list[str], str, int]:
        """(answer words, finish reason, prompt tokens)."""
        prompt = text.prompt_of(call.endpoint, body)
        verdict = text.judge_verdict(prompt) if self.cfg.judge else None
        if verdict is not None:
            said = verdict.split(" ")
        else:
            said = text.answer(prompt, self.cfg.answer_words, self.cfg.quality, self.cfg.seed)
        finish = "stop"
        limit = next((body[f] for f in _LIMIT_FIELDS if isinstance(body.get(f), int)), None)
        if limit is not None and 0 < limit < len(said) and verdict is None:
            said, finish = said[:limit], "length"
        messages = body.get("messages")
        overhead = 3 * len(messages) if isinstance(messages, list) else 0
        return said, finish, text.count_tokens(prompt) + overhead

    def _rid(self) -> str:
        return f"sim{self.calls:08d}"

    async def _wait(self, seconds: float, call: UpstreamCall) -> None:
        if seconds > call.timeout_s:
            await asyncio.sleep(call.timeout_s)
            raise UpstreamTimeout("simulated model timed out", backend=self.name)
        await asyncio.sleep(seconds)

    async def call(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> UpstreamResponse:
        wait = self._enter(call)
        body: dict[str, Any] = orjson.loads(call.body)
        self.in_flight += 1
        try:
            model = str(body.get("model", ""))
            if call.endpoint == EMBEDDINGS:
                doc = self._embeddings(body, model)
            else:
                said, finish, prompt_tokens = self._words(call, body)
                wait += max(0, len(said) - 1) / self.cfg.tokens_per_s
                use = shapes.usage(call.endpoint, prompt_tokens, len(said))
                doc = shapes.complete(call.endpoint, self._rid(), model, " ".join(said), finish, use)
            await self._wait(wait, call)
            return UpstreamResponse(
                status=200, body=orjson.dumps(doc), endpoint=self.info.endpoints[0], parsed=doc
            )
        finally:
            self.in_flight -= 1

    def _embeddings(self, body: dict[str, Any], model: str) -> dict[str, object]:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else [str(x) for x in raw] if isinstance(raw, list) else [""]
        vectors = [text.vector(s, self.cfg.embedding_dims, self.cfg.seed) for s in inputs]
        tokens = sum(text.count_tokens(s) for s in inputs)
        return shapes.embeddings(model, vectors, {"prompt_tokens": tokens, "total_tokens": tokens})

    async def open_stream(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> SimulatedStream:
        if call.endpoint not in STREAMABLE:
            err = error_body(
                f"streaming /{call.endpoint} is not supported",
                "invalid_request_error",
                "unsupported_endpoint",
            )
            raise UpstreamHTTPError(400, err, backend=self.name)
        wait = self._enter(call)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + call.timeout_s
        await self._wait(wait, call)
        body: dict[str, Any] = orjson.loads(call.body)
        said, finish, prompt_tokens = self._words(call, body)
        pieces = [w if i == 0 else " " + w for i, w in enumerate(said)]
        include_usage = call.endpoint == RESPONSES or (
            call.endpoint in USAGE_OPTION and bool((body.get("stream_options") or {}).get("include_usage"))
        )
        use = shapes.usage(call.endpoint, prompt_tokens, len(said))
        model = str(body.get("model", ""))
        events = shapes.stream(call.endpoint, self._rid(), model, pieces, finish, use, include_usage)
        self.in_flight += 1
        return SimulatedStream(events, self, 1 / self.cfg.tokens_per_s, deadline)
