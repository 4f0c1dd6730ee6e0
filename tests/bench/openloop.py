"""Open-loop (fixed-rate) load: sends are scheduled on a clock and latency is measured from the
scheduled time, so a slow response cannot hold back the next send (no coordinated omission)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

import aiohttp

from tests.bench import fixtures, procs

_DONE = b"data: [DONE]"
_SPIN_S = 0.0015


@dataclass(frozen=True)
class Sample:
    lag_s: float  # actual send - scheduled send (the generator's own timing error)
    ttfb_s: float  # scheduled send -> first body bytes
    total_s: float  # scheduled send -> end of the full response
    ok: bool


@dataclass(frozen=True)
class Series:
    samples: list[Sample]

    @property
    def failures(self) -> int:
        return sum(not s.ok for s in self.samples)

    def values(self, field: str) -> list[float]:
        return [getattr(s, field) for s in self.samples if s.ok]


def _session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, ttl_dns_cache=None))


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    stream: bool,
    scheduled: float,
    headers: dict[str, str],
) -> Sample:
    sent = perf_counter()
    first = 0.0
    tail = b""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            while chunk := await resp.content.readany():
                if not first:
                    first = perf_counter()
                tail = (tail + chunk)[-64:]
            end = perf_counter()
            ok = resp.status == 200 and (not stream or _DONE in tail)
    except (TimeoutError, aiohttp.ClientError):
        end, ok = perf_counter(), False
    return Sample(sent - scheduled, (first or end) - scheduled, end - scheduled, ok)


async def fixed_rate(
    url: str, *, stream: bool, rate: float, count: int, warmup: int, headers: dict[str, str] | None = None
) -> Series:
    """``warmup`` + ``count`` requests at ``rate``/s, evenly spaced; the warm-up ones are dropped. ``headers``:
    sent besides the bench's own (a peer's routing headers)."""
    body = fixtures.request_body(stream=stream)
    sent = fixtures.request_headers() | (headers or {})
    async with _session() as session:
        tasks: list[asyncio.Task[Sample]] = []
        start = perf_counter() + 0.01
        for i in range(warmup + count):
            scheduled = start + i / rate
            await _until(scheduled)
            tasks.append(asyncio.create_task(_one(session, url, body, stream, scheduled, sent)))
        samples = await asyncio.gather(*tasks)
    return Series(list(samples[warmup:]))


async def _until(deadline: float) -> None:
    """Sleep until ``deadline`` (perf_counter time). Event-loop timers have 1 ms granularity, so the
    last ``_SPIN_S`` are spent yielding to the loop (responses are still handled meanwhile)."""
    delay = deadline - perf_counter() - _SPIN_S
    if delay > 0:
        await asyncio.sleep(delay)
    while perf_counter() < deadline:
        await asyncio.sleep(0)


async def probe(url: str, *, stream: bool, headers: dict[str, str] | None = None) -> str | None:
    """One request; None if it succeeded, otherwise what went wrong."""
    body = fixtures.request_body(stream=stream)
    async with _session() as session:
        try:
            async with session.post(
                url, data=body, headers=fixtures.request_headers() | (headers or {})
            ) as resp:
                content = await resp.read()
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
    if resp.status != 200:
        return f"HTTP {resp.status}: {content[:300]!r}"
    if stream and not content.rstrip().endswith(_DONE):
        return f"stream did not end with [DONE]: ...{content[-200:]!r}"
    if not stream and b'"usage"' not in content:
        return f"no usage in body: {content[:300]!r}"
    return None


async def cold_start(
    spawn: Callable[[], subprocess.Popen[bytes]],
    url: str,
    timeout_s: float = 30.0,
    headers: dict[str, str] | None = None,
) -> tuple[float, subprocess.Popen[bytes]]:
    """Seconds from process spawn to the first successful chat completion through it."""
    body = fixtures.request_body(stream=False)
    sent = fixtures.request_headers() | (headers or {})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        last = "no answer"
        t0 = perf_counter()
        proc = spawn()
        while perf_counter() - t0 < timeout_s:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving")
            try:
                async with session.post(url, data=body, headers=sent) as resp:
                    content = await resp.read()
                    if resp.status == 200:
                        return perf_counter() - t0, proc
                    last = f"HTTP {resp.status}: {content[:300]!r}"
            except aiohttp.ClientError as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.005)
    await procs.stop(proc)
    raise RuntimeError(f"{proc.args!r} served no successful request within {timeout_s} s; last: {last}")
