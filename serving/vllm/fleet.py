"""Measured token throughput of a vLLM fleet (one backend, all its endpoints), from their ``/metrics``.

``FleetMeter.scrape`` is called by a background task (``gateway.vllm_pricing``), never on the request path:
it fetches every endpoint's ``/metrics`` at once and keeps each endpoint's token counters in a trailing
window, so the fleet's throughput over the window is the sum of the endpoints' counter increases divided by
the time they cover. An endpoint that cannot be scraped contributes nothing (its window restarts when it is
back); a restarted server (counters reset) is handled like Prometheus' ``rate()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.errors import UpstreamError
from serving.http_backend import OpenAIHTTPBackend
from serving.vllm.admin import server_root
from serving.vllm.metrics import CounterWindow, Snapshot, snapshot


@dataclass(frozen=True, slots=True)
class FleetThroughput:
    """The fleet's token counters over the trailing window (sums over endpoints)."""

    backend: str
    endpoints: int
    """Endpoints configured."""
    scraped: int
    """Endpoints whose ``/metrics`` answered in the last round."""
    window_s: float
    """Seconds the window covers (the longest endpoint span; at most the configured window)."""
    generation_tokens: float
    prompt_tokens: float
    generation_tps: float
    """Generated (output) tokens per second, fleet-wide."""
    prompt_tps: float
    """Prompt (input) tokens per second, fleet-wide."""
    running: float
    waiting: float
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def total_tps(self) -> float:
        return self.generation_tps + self.prompt_tps

    @property
    def total_tokens(self) -> float:
        return self.generation_tokens + self.prompt_tokens


class _EndpointWindows:
    __slots__ = ("gen", "prompt", "last")

    def __init__(self, window_s: float) -> None:
        self.gen = CounterWindow(window_s)
        self.prompt = CounterWindow(window_s)
        self.last: Snapshot | None = None


class FleetMeter:
    def __init__(
        self,
        backend: OpenAIHTTPBackend,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = 5.0,
        stale_after_s: float = 30.0,
    ) -> None:
        self.backend = backend
        self.stale_after_s = stale_after_s
        self.window_s = window_s
        self.clock = clock
        self.timeout_s = timeout_s
        self._eps = {url: _EndpointWindows(window_s) for url in backend.pool.urls()}
        self.latest: FleetThroughput | None = None
        self._errors: dict[str, str] = {}

    async def _fetch(self, url: str) -> tuple[str, str | None, str | None]:
        try:
            status, body = await self.backend.admin_request(
                "GET", f"{server_root(url)}/metrics", timeout_s=self.timeout_s
            )
        except UpstreamError as exc:
            return url, None, f"unreachable: {exc.message}"
        if status != 200:
            return url, None, f"/metrics answered HTTP {status}"
        return url, body.decode("utf-8", "replace"), None

    def observe(self, url: str, text: str, t: float | None = None) -> None:
        """Fold one endpoint's ``/metrics`` body into its windows (also the hook for a scrape made elsewhere,
        e.g. by ``serving.vllm.monitor``, so an endpoint is not scraped twice)."""
        w = self._eps.get(url)
        if w is None:
            return
        t = self.clock() if t is None else t
        snap = snapshot(text, t)
        w.last = snap
        w.gen.observe(t, snap.generation_tokens)
        w.prompt.observe(t, snap.prompt_tokens)
        self._errors.pop(url, None)

    def failed(self, url: str, why: str) -> None:
        """The endpoint could not be scraped: no increase is counted across the gap."""
        w = self._eps.get(url)
        if w is None:
            return
        self._errors[url] = why
        w.gen.reset_gap()
        w.prompt.reset_gap()
        w.last = None

    async def scrape(self) -> FleetThroughput:
        """One round: scrape every endpoint, fold the counters into the windows, return the fleet's figures."""
        got = await asyncio.gather(*(self._fetch(u) for u in self._eps))
        t = self.clock()
        for url, text, err in got:
            if text is None:
                self.failed(url, err or "no answer")
            else:
                self.observe(url, text, t)
        return self.summary()

    def summary(self) -> FleetThroughput:
        now = self.clock()
        for url, w in self._eps.items():
            last = w.gen.last_t
            if url not in self._errors and (last is None or now - last > self.stale_after_s):
                self.failed(url, "no /metrics yet" if last is None else f"no /metrics for {now - last:.0f} s")
        errors = dict(self._errors)
        gen = prompt = gen_tps = prompt_tps = span_max = running = waiting = 0.0
        for w in self._eps.values():
            g, gspan = w.gen.increase()
            p, pspan = w.prompt.increase()
            if gspan > 0:
                gen += g
                gen_tps += g / gspan
                span_max = max(span_max, gspan)
            if pspan > 0:
                prompt += p
                prompt_tps += p / pspan
            if w.last is not None:
                running += w.last.running
                waiting += w.last.waiting
        fl = FleetThroughput(
            backend=self.backend.name,
            endpoints=len(self._eps),
            scraped=len(self._eps) - len(errors),
            window_s=span_max,
            generation_tokens=gen,
            prompt_tokens=prompt,
            generation_tps=gen_tps,
            prompt_tps=prompt_tps,
            running=running,
            waiting=waiting,
            errors=errors,
        )
        self.latest = fl
        return fl
