"""Soak (slow tier): a real ``pointsman serve`` at a steady open-loop rate for several minutes, streaming and
non-streaming mixed, on loopback only. Zero errors, every request in the ledger, flat memory, stable latency.

Stable latency: the last minute's medians within 2x (+20 ms) of the first minute's, and its tail (the median of
its 10-second windows' p99s) within 3x (+100 ms), so a one-off stall of a shared machine (seen in CI: a few
hundred milliseconds, once) does not fail it but drift, or stalls that recur, do; and no request over 2 s. The
figures list every stall (requests 50 ms slower than the first minute's p99, grouped by when they were sent) and
the load generator's own garbage-collection passes, to tell the gateway's stalls from the client's. The load
generator freezes its heap first: one full pass over pytest's heap stopped it for 127 ms, and 10 requests with it.

``POINTSMAN_SOAK_S`` (default 180) and ``POINTSMAN_SOAK_RPS`` (default 100) change the length and the rate.
The figures are printed (``pytest -s``) and written to ``$POINTSMAN_SOAK_JSON`` when set.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess
from tests.reliability.conftest import PROVIDER_KEY
from tests.reliability.probes import CLIENT, MSG, debug_process, flush_ledger, ledger_rows, proc_rss

pytestmark = pytest.mark.slow

DURATION_S = float(os.environ.get("POINTSMAN_SOAK_S", "180"))
RATE = float(os.environ.get("POINTSMAN_SOAK_RPS", "100"))
RSS_GROWTH_BOUND_MIB = 25.0  # from the end of the first minute to the end
WINDOW_S = 10.0  # a minute's tail latency is the median of its windows' p99s
STALL_S = 0.05  # a request this much slower than the first minute's p99 is part of a stall
LONGEST_S = 2.0  # no request, stall or not, takes longer than this


@dataclass
class Sample:
    t: float  # scheduled send, seconds since the start
    kind: str
    latency_s: float  # scheduled send -> end of the response
    ttfb_s: float  # scheduled send -> first body bytes
    ok: bool
    detail: str = ""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@pytest.fixture
def soak_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, FakeOpenAI, Path]]:
    up = FakeOpenAI(
        name="soak", chunks=8, chunk_delay=0.01, content="The quick brown fox jumps over the lazy dog. " * 4
    ).start()
    data = tmp_path / "data"
    cfg = {
        "server": {"data_dir": str(data)},
        "admin_key": "sk-test-admin-0001",
        "backends": {"up": {"type": "openai", "base_url": up.url, "api_key": PROVIDER_KEY}},
        "models": {"gpt-4o-mini": {"backend": "up"}, "text-embedding-3-small": {"backend": "up"}},
        "keys": [{"name": "app", "key": CLIENT["authorization"].split()[1], "team": "search"}],
        "accounting": {"pricing": {"gpt-4o-mini": {"input_per_mtok": "0.15", "output_per_mtok": "0.60"}}},
    }
    gw = GatewayProcess(cfg, tmp_path).start()
    try:
        yield gw, up, data
    finally:
        gw.stop()
        up.stop()


REQUESTS: list[tuple[str, str, bytes]] = [  # (kind, path, body), sent in turn
    ("chat", "/v1/chat/completions", orjson.dumps({"model": "gpt-4o-mini", "messages": MSG})),
    (
        "stream",
        "/v1/chat/completions",
        orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "stream": True}),
    ),
    (
        "chat",
        "/v1/chat/completions",
        orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 64}),
    ),
    (
        "stream+usage",
        "/v1/chat/completions",
        orjson.dumps(
            {
                "model": "gpt-4o-mini",
                "messages": MSG,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ),
    ),
    (
        "stream",
        "/v1/chat/completions",
        orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "stream": True}),
    ),
    ("embeddings", "/v1/embeddings", orjson.dumps({"model": "text-embedding-3-small", "input": "hello"})),
    ("chat", "/v1/chat/completions", orjson.dumps({"model": "gpt-4o-mini", "messages": MSG})),
    (
        "stream",
        "/v1/chat/completions",
        orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "stream": True}),
    ),
]


async def one(session: aiohttp.ClientSession, url: str, i: int, t0: float, scheduled: float) -> Sample:
    kind, path, body = REQUESTS[i % len(REQUESTS)]
    first = 0.0
    tail = b""
    try:
        async with session.post(
            url + path,
            data=body,
            headers={**CLIENT, "content-type": "application/json", "x-request-id": f"soak-{i}"},
        ) as resp:
            while chunk := await resp.content.readany():
                if not first:
                    first = time.perf_counter()
                tail = (tail + chunk)[-256:]
            end = time.perf_counter()
            ok = (
                resp.status == 200
                and (not kind.startswith("stream") or tail.endswith(b"data: [DONE]\n\n"))
                and b'"error"' not in tail
            )
            detail = "" if ok else f"{resp.status} {tail[-200:]!r}"
    except (TimeoutError, aiohttp.ClientError) as exc:
        end, ok, detail = time.perf_counter(), False, repr(exc)
    return Sample(scheduled - t0, kind, end - scheduled, (first or end) - scheduled, ok, detail)


async def drive(
    url: str, pid: int, duration: float, rate: float
) -> tuple[list[Sample], list[tuple[float, int]]]:
    samples: list[Sample] = []
    rss: list[tuple[float, int]] = []
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), timeout=timeout) as session:
        t0 = time.perf_counter()
        n = int(duration * rate)
        next_rss = 0.0
        for i in range(n):
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if scheduled - t0 >= next_rss:
                rss.append((scheduled - t0, proc_rss(pid)))
                next_rss += 5.0

            async def run(i: int = i, scheduled: float = scheduled) -> None:
                samples.append(await one(session, url, i, t0, scheduled))

            task = asyncio.get_running_loop().create_task(run())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        rss.append((time.perf_counter() - t0, proc_rss(pid)))
    return samples, rss


class GcPauses:
    """The load generator's own cyclic-GC passes (this process, not the gateway), with their start and length."""

    def __init__(self) -> None:
        self.passes: list[tuple[float, int, float]] = []  # (start, generation, seconds)
        self._start = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.passes.append((self._start, info["generation"], time.perf_counter() - self._start))


def minute_stats(samples: list[Sample], start: float, end: float) -> dict[str, float]:
    """Latency of non-streamed requests (whole response), and of streams (first byte, whole stream), in ms."""
    window = [s for s in samples if start <= s.t < end and s.ok]
    unary = [s.latency_s for s in window if not s.kind.startswith("stream")]
    ttfb = [s.ttfb_s for s in window if s.kind.startswith("stream")]
    whole = [s.latency_s for s in window if s.kind.startswith("stream")]
    return {
        "n": len(window),
        "unary_p50_ms": 1000 * pct(unary, 0.5),
        "unary_p95_ms": 1000 * pct(unary, 0.95),
        "unary_p99_ms": 1000 * pct(unary, 0.99),
        "stream_ttfb_p50_ms": 1000 * pct(ttfb, 0.5),
        "stream_ttfb_p99_ms": 1000 * pct(ttfb, 0.99),
        "stream_total_p50_ms": 1000 * pct(whole, 0.5),
        "stream_total_p99_ms": 1000 * pct(whole, 0.99),
    }


P99_KEYS = ("unary_p99_ms", "stream_ttfb_p99_ms", "stream_total_p99_ms")


def tail_stats(samples: list[Sample], start: float, end: float) -> dict[str, float]:
    """A minute's p99s as the median of its ``WINDOW_S`` windows' p99s. A one-off stall of a shared machine (a
    fraction of a second, one window) moves a minute's p99 but not this; latency that drifts moves every window,
    and stalls that recur do too."""
    starts = [start + i * WINDOW_S for i in range(int((end - start) / WINDOW_S))]
    windows = [minute_stats(samples, a, a + WINDOW_S) for a in starts]
    return {k: statistics.median(w[k] for w in windows) for k in P99_KEYS}


def stalls(samples: list[Sample], slow_s: float) -> list[dict[str, float]]:
    """Requests slower than ``slow_s``, grouped into stalls (sent within a second of the previous slow one)."""
    found: list[dict[str, float]] = []
    for s in sorted((s for s in samples if s.latency_s > slow_s), key=lambda s: s.t):
        if found and s.t - found[-1]["last_sent_s"] <= 1.0:
            found[-1]["requests"] += 1
            found[-1]["last_sent_s"] = round(s.t, 2)
            found[-1]["worst_ms"] = max(found[-1]["worst_ms"], round(1000 * s.latency_s, 1))
        else:
            found.append(
                {
                    "sent_s": round(s.t, 2),
                    "last_sent_s": round(s.t, 2),
                    "requests": 1,
                    "worst_ms": round(1000 * s.latency_s, 1),
                }
            )
    return found


def test_soak_steady_mixed_load_zero_errors_flat_memory_stable_latency(
    soak_gateway: tuple[GatewayProcess, FakeOpenAI, Path],
) -> None:
    gw, _, data = soak_gateway
    assert gw.proc is not None
    before = debug_process(gw.url)
    gc.collect()
    gc.freeze()  # the load generator's full GC passes would otherwise walk pytest's whole heap mid-run
    try:
        with GcPauses() as pauses:
            t0 = time.perf_counter()
            samples, rss = asyncio.run(drive(gw.url, gw.proc.pid, DURATION_S, RATE))
    finally:
        gc.unfreeze()
    time.sleep(1.0)
    after = debug_process(gw.url)
    flush_ledger(gw.url)
    rows = ledger_rows(data)

    errors = [s for s in samples if not s.ok]
    first = minute_stats(samples, 0, 60)
    last = minute_stats(samples, DURATION_S - 60, DURATION_S)
    first_tail = tail_stats(samples, 0, 60)
    last_tail = tail_stats(samples, DURATION_S - 60, DURATION_S)
    stall_list = stalls(samples, STALL_S + first["stream_total_p99_ms"] / 1000)
    rss_after_warmup = next(v for t, v in rss if t >= 60) if DURATION_S > 60 else rss[0][1]
    growth_mib = (rss[-1][1] - rss_after_warmup) / 2**20
    achieved = len(samples) / max(s.t for s in samples)
    figures: dict[str, Any] = {
        "duration_s": DURATION_S,
        "target_rps": RATE,
        "achieved_rps": round(achieved, 1),
        "requests": len(samples),
        "errors": len(errors),
        "ledger_rows": len(rows),
        "mix": {k: sum(1 for s in samples if s.kind == k) for k in sorted({s.kind for s in samples})},
        "first_minute": {k: round(v, 1) for k, v in first.items()},
        "last_minute": {k: round(v, 1) for k, v in last.items()},
        "overall": {k: round(v, 1) for k, v in minute_stats(samples, 0, DURATION_S + 1).items()},
        "tail_by_window": {
            "first_minute": {k: round(v, 1) for k, v in first_tail.items()},
            "last_minute": {k: round(v, 1) for k, v in last_tail.items()},
        },
        "longest_ms": round(1000 * max(s.latency_s for s in samples), 1),
        "stalls": stall_list,
        "rss_mib": {
            "start": round(rss[0][1] / 2**20, 1),
            "after_first_minute": round(rss_after_warmup / 2**20, 1),
            "end": round(rss[-1][1] / 2**20, 1),
            "max": round(max(v for _, v in rss) / 2**20, 1),
            "growth_after_first_minute": round(growth_mib, 1),
            "bound": RSS_GROWTH_BOUND_MIB,
        },
        "asyncio_tasks": [before["asyncio_tasks"], after["asyncio_tasks"]],
        "open_fds": [before["open_fds"], after["open_fds"]],
        "client_gc": {
            "passes": len(pauses.passes),
            "full": sum(1 for _, g, _ in pauses.passes if g == 2),
            "max_ms": round(1000 * max((d for _, _, d in pauses.passes), default=0.0), 1),
            "over_10ms": [(round(t - t0, 1), g, round(1000 * d, 1)) for t, g, d in pauses.passes if d > 0.01],
        },
    }
    print("\nsoak:", json.dumps(figures, indent=1))
    if out := os.environ.get("POINTSMAN_SOAK_JSON"):
        Path(out).write_text(json.dumps(figures, indent=1))

    assert not errors, [f"{e.kind} at {e.t:.1f}s: {e.detail}" for e in errors[:10]]
    assert len(rows) == len(samples), "every request is in the ledger exactly once"
    assert achieved >= 0.95 * RATE, f"the load generator only reached {achieved:.0f} req/s"
    assert growth_mib < RSS_GROWTH_BOUND_MIB, f"RSS grew {growth_mib:.1f} MiB after the first minute"
    assert after["asyncio_tasks"] <= before["asyncio_tasks"] + 3
    # stable: the last minute is no worse than the first, within generous noise for a shared machine
    for k in ("unary_p50_ms", "stream_ttfb_p50_ms", "stream_total_p50_ms"):
        assert last[k] <= 2 * first[k] + 20, (k, first, last)
    for k in P99_KEYS:
        assert last_tail[k] <= 3 * first_tail[k] + 100, (k, first_tail, last_tail, stall_list)
    assert max(s.latency_s for s in samples) < LONGEST_S, stall_list
    assert statistics.fmean([s.latency_s for s in samples]) < 1.0
