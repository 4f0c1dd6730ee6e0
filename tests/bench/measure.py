"""One benchmark round: start the gateways (timing cold starts), then run every phase against every
target back to back, so machine drift hits all targets alike."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from subprocess import Popen
from typing import Any

from tests.bench import openloop, phases, procs, wrk
from tests.bench.report import Figures, percentile
from tests.bench.targets import DIRECT, Endpoint, Gateway, feature_name

LOAD_CPU, GATEWAY_CPU = 0, 1


@dataclass(frozen=True)
class Settings:
    wrk_s: float = 10.0
    wrk_warmup_s: float = 2.0
    connections: int = 64
    rate: float = 200.0  # req/s for the added-latency phase
    count: int = 2000
    warmup: int = 200
    stream_rate: float = 50.0  # streams/s for the TTFB phase
    stream_count: int = 500
    stream_warmup: int = 50
    cold_starts: int = 3
    settle_s: float = 0.5  # idle pause before each measurement
    profile_s: float = 6.0  # per-phase profile: sampled wrk run per target and kind (0: no profile)
    # feature rows at one paced load: each connection's pause between requests (0: none)
    paced_pause_ms: int = 30
    pin: bool = True
    # the latency and TTFB phases again with the CPUs kept from halting (procs.Awake); not for the peers
    awake: bool = True


QUICK = Settings(
    wrk_s=2,
    wrk_warmup_s=1,
    count=400,
    warmup=50,
    stream_count=100,
    stream_warmup=10,
    settle_s=0.2,
    profile_s=2.0,
)


async def run_round(
    index: int, settings: Settings, direct: Endpoint, gateways: Sequence[Gateway], workdir: Path, log: Any
) -> Figures:
    figures: Figures = {direct.name: {"errors": 0}}
    running: dict[str, Popen[bytes]] = {}
    cpu = GATEWAY_CPU if settings.pin else None
    failed: dict[str, set[bool]] = {}  # a peer's kinds (stream or not) that failed: their phases are skipped

    def fail(name: str, what: str, exc: BaseException | str) -> None:
        """A peer's phase failed: noted in its figures (``failures``), the run goes on."""
        text = str(exc).strip().splitlines()
        figures.setdefault(name, {"errors": 0}).setdefault("failures", []).append(
            f"{what}: {text[0][:300] if text else type(exc).__name__}"
        )
        log(f"  {name}: {what} FAILED: {text[0][:300] if text else exc!r}")

    try:
        endpoints = [direct]
        for gw in gateways:
            try:
                samples, proc = await _cold_starts(gw, settings.cold_starts, cpu, workdir / f"{gw.name}.log")
            except RuntimeError as exc:
                if not gw.peer:
                    raise
                fail(gw.name, "start", exc)
                continue
            running[gw.name] = proc
            figures[gw.name] = {"cold_start_s": samples, "errors": 0}
            endpoints.append(gw.endpoint(proc.pid))
            log(f"  {gw.name}: cold start {', '.join(f'{s:.3f}' for s in samples)} s")
        shift = index % len(endpoints)
        order = endpoints[shift:] + endpoints[:shift]
        for ep in order:
            for stream in (False, True):
                problem = await _probe_kind(ep, stream)
                if problem is None:
                    continue
                if not ep.peer:
                    raise RuntimeError(problem)
                fail(ep.name, f"{_KIND[stream]} probe", problem.split(" failed: ", 1)[-1])
                failed.setdefault(ep.name, set()).add(stream)
        # (streams?, what, CPUs kept awake?, the measurement)
        phases: list[tuple[bool, str, bool, Callable[[Endpoint], Awaitable[dict[str, Any]]]]] = [
            (False, "rps", False, lambda ep: throughput(ep, False, "rps", workdir, settings)),
            (True, "sps", False, lambda ep: throughput(ep, True, "sps", workdir, settings)),
            (False, "latency", False, lambda ep: _latency(ep, settings)),
            (True, "TTFB", False, lambda ep: _ttfb(ep, settings)),
        ]
        if settings.awake:
            phases += [
                (False, "latency, CPUs awake", True, lambda ep: _awake(_latency(ep, settings))),
                (True, "TTFB, CPUs awake", True, lambda ep: _awake(_ttfb(ep, settings))),
            ]
        for stream, what, awake, measure in phases:
            with procs.Awake(_cpus(settings)) if awake else contextlib.nullcontext():
                for ep in order:
                    if stream in failed.get(ep.name, ()) or (awake and ep.peer):
                        continue
                    try:
                        got = await measure(ep)
                    except RuntimeError as exc:  # wrk printed no summary: the target stopped answering
                        if not ep.peer:
                            raise
                        fail(ep.name, what, exc)
                        continue
                    figures[ep.name].update(got)
                    log(f"  {ep.name}: {what} {_said(got)}")
        for name, proc in running.items():
            figures[name]["rss_mb"] = procs.rss_bytes(proc.pid) / 2**20
    finally:
        for proc in running.values():
            await procs.stop(proc)
    if settings.profile_s > 0:
        for gw in gateways:
            if gw.profilable:
                figures[gw.name].update(await _profile(gw, settings, cpu, workdir, log))
    _add_overheads(figures)
    return figures


_KIND = {False: "non-streaming", True: "streaming"}


def _cpus(settings: Settings) -> list[int]:
    """The CPUs the load generator, the upstream and the gateways run on."""
    return [LOAD_CPU, GATEWAY_CPU] if settings.pin else sorted(os.sched_getaffinity(0))


async def _awake(phase: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A latency or TTFB phase's figures under the ``awake_`` keys (run with the CPUs kept awake)."""
    return {f"awake_{k}": v for k, v in (await phase).items()}


def _said(got: dict[str, Any]) -> str:
    """A phase's headline figure, for the log."""
    for key, value in got.items():
        if key in ("rps", "sps"):
            return f"{value:,.0f}"
        if key.endswith(("lat_p50_ms", "ttfb_p50_ms")):
            return f"p50 {value:.2f} ms"
    return ""


FEATURE_SLICE_S = 2.0
"""The feature rows' measurements are cut into slices of about this long, each row measured once per slice."""


async def run_features(
    index: int, settings: Settings, rows: Sequence[Gateway], workdir: Path, log: Any, profile: bool = False
) -> Figures:
    """The feature rows, interleaved: every row's gateway is started (one cold start each, in turn) and probed,
    then kept running; each measurement (maximum throughput, streams, the paced load) is cut into slices of about
    ``FEATURE_SLICE_S``, and every slice measures each row once, in an order that rotates from slice to slice (and
    from round to round). A slow minute of the machine then falls on every row alike: measured one after another,
    the same row moved by +-30% between rounds on a 2-core VM while the others did not. A row's figures pool its
    slices (requests over their time, CPU over their requests). Each row's CPU is also given relative to the
    defaults row of the same round (``*_cpu_x_defaults``). ``profile``: each row's per-phase profile too
    (``_profile``, after the measurements, each row started again under the sampler)."""
    figures: Figures = {}
    cpu = GATEWAY_CPU if settings.pin else None
    shift = index % len(rows) if rows else 0
    running: list[tuple[Gateway, Endpoint, Popen[bytes]]] = []
    try:
        for gw in [*rows[shift:], *rows[:shift]]:
            seconds, proc = await openloop.cold_start(
                partial(gw.spawn, cpu, workdir / f"{gw.name}.log"), gw.url
            )
            running.append((gw, gw.endpoint(proc.pid), proc))
            figures[gw.name] = {"cold_start_s": [seconds], "errors": 0}
        for _, ep, _ in running:
            await probe(ep)
        kinds: list[tuple[bool, str, int]] = [(False, "rps", 0), (True, "sps", 0)]
        if settings.paced_pause_ms > 0:
            kinds.append((False, "paced", settings.paced_pause_ms))
        slices = max(1, round(settings.wrk_s / FEATURE_SLICE_S))
        first = replace(settings, wrk_s=settings.wrk_s / slices)
        rest = replace(first, wrk_warmup_s=0.0)
        for stream, key, pause in kinds:
            pooled = {gw.name: [0.0, 0.0, 0.0, 0.0] for gw, _, _ in running}  # seconds, ok, cpu s, errors
            for i in range(slices):
                k = i % len(running)
                for gw, ep, _ in [*running[k:], *running[:k]]:
                    got = await throughput(ep, stream, key, workdir, rest if i else first, pause)
                    ok = got[key] * first.wrk_s
                    acc = pooled[gw.name]
                    acc[0] += first.wrk_s
                    acc[1] += ok
                    acc[2] += got[f"{key}_cpu_us"] * ok / 1e6 if ok else 0.0
                    acc[3] += got[f"{key}_errors"]
            for name, (secs, ok, cpu_s, errors) in pooled.items():
                figures[name][key] = ok / secs
                figures[name][f"{key}_cpu_us"] = cpu_s / ok * 1e6 if ok else float("nan")
                figures[name][f"{key}_errors"] = errors
        for gw, _, proc in running:
            metrics = figures[gw.name]
            metrics["rss_mb"] = procs.rss_bytes(proc.pid) / 2**20
            metrics["errors"] = metrics["rps_errors"] + metrics["sps_errors"]
            if "paced" in metrics:
                metrics["paced_pause_ms"] = settings.paced_pause_ms
                metrics["paced_connections"] = settings.connections
    finally:
        for _, _, proc in running:
            await procs.stop(proc)
    for gw, _, _ in running:
        metrics = figures[gw.name]
        if profile and settings.profile_s > 0 and gw.profilable:
            metrics.update(await _profile(gw, settings, cpu, workdir, log))
        log(
            f"  {gw.name}: rps {metrics['rps']:,.0f} at {metrics['rps_cpu_us']:.0f} µs, "
            f"sps {metrics['sps']:,.0f} at {metrics['sps_cpu_us']:.0f} µs"
            + (
                f", paced {metrics['paced']:,.0f} req/s at {metrics['paced_cpu_us']:.0f} µs"
                if "paced" in metrics
                else ""
            )
        )
    base = figures.get(feature_name("defaults"))
    if base:
        for metrics in figures.values():
            for key in ("rps", "rps_cpu_us", "sps", "sps_cpu_us", "paced_cpu_us"):
                if base.get(key):
                    metrics[f"{key}_x_defaults"] = metrics[key] / base[key]
    return figures


async def _profile(
    gw: Gateway, settings: Settings, cpu: int | None, workdir: Path, log: Any
) -> dict[str, float]:
    """The per-phase profile: the gateway started again under ``sampler.py``, sampled during a wrk run of each
    kind (non-streaming, streaming), the samples attributed to phases (``phases.py``)."""
    out: dict[str, float] = {}
    dump = workdir / f"{gw.name}.profile.json"
    _, proc = await openloop.cold_start(
        lambda: gw.profiled(dump).spawn(cpu, workdir / f"{gw.name}.profiled.log"), gw.url
    )
    try:
        ep = gw.endpoint(proc.pid)
        await probe(ep)
        for stream, key in ((False, "rps"), (True, "sps")):
            url = ep.stream_url if stream else ep.chat_url
            script = wrk.write_script(workdir / f"{key}.lua", stream=stream)
            load_cpu = LOAD_CPU if settings.pin else None
            await wrk.run(url, script, duration_s=1, connections=settings.connections, cpu=load_cpu)
            await asyncio.sleep(settings.settle_s)
            dump.unlink(missing_ok=True)
            os.kill(proc.pid, signal.SIGUSR1)
            res = await wrk.run(
                url, script, duration_s=settings.profile_s, connections=settings.connections, cpu=load_cpu
            )
            os.kill(proc.pid, signal.SIGUSR2)
            doc = await _read_dump(dump)
            dump.rename(dump.with_name(f"{gw.name}.{key}.profile.json"))  # kept with the run's files
            prof = phases.attribute(doc, res.ok)
            out.update(prof.figures(f"prof_{key}"))
            log(
                f"  {gw.name}: {key} profile {prof.samples} samples, {prof.cpu_s / max(res.ok, 1) * 1e6:.0f} µs CPU each"
            )
            if prof.top_other and prof.shares().get(phases.OTHER, 0.0) > 0.05:
                log(f"    unattributed: {prof.top_other[:5]} (add rules in tests/bench/phases.py)")
    finally:
        await procs.stop(proc)
    return out


async def _read_dump(path: Path, timeout_s: float = 10.0) -> dict[str, Any]:
    for _ in range(int(timeout_s / 0.05)):
        if path.exists():
            doc: dict[str, Any] = json.loads(path.read_text())
            return doc
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the sampler wrote no profile to {path} within {timeout_s:g} s")


async def _cold_starts(gw: Gateway, n: int, cpu: int | None, log: Path) -> tuple[list[float], Popen[bytes]]:
    """``n`` spawn-to-first-success times; the last process keeps running for the load phases."""
    samples: list[float] = []
    for i in range(n):
        seconds, proc = await openloop.cold_start(
            lambda: gw.spawn(cpu, log), gw.url, gw.start_timeout_s, dict(gw.chat_headers)
        )
        samples.append(seconds)
        if i < n - 1:
            await procs.stop(proc)
    return samples, proc


async def probe(ep: Endpoint) -> None:
    for stream in (False, True):
        problem = await _probe_kind(ep, stream)
        if problem:
            raise RuntimeError(problem)


async def _probe_kind(ep: Endpoint, stream: bool) -> str | None:
    url = ep.stream_url if stream else ep.chat_url
    problem = await openloop.probe(url, stream=stream, headers=ep.headers(stream))
    return f"{ep.name}: {_KIND[stream]} probe of {url} failed: {problem}" if problem else None


async def throughput(
    ep: Endpoint, stream: bool, key: str, workdir: Path, settings: Settings, pause_ms: int = 0
) -> dict[str, float]:
    """wrk's closed loop against ``ep``: requests (or streams) per second and the target's CPU per request.
    ``pause_ms`` > 0: each connection pauses that long between requests (a paced load, below the maximum)."""
    url = ep.stream_url if stream else ep.chat_url
    script = wrk.write_script(
        workdir / f"{key}-{ep.name}.lua", stream=stream, headers=ep.headers(stream), pause_ms=pause_ms
    )
    load_cpu = LOAD_CPU if settings.pin else None
    await asyncio.sleep(settings.settle_s)
    if settings.wrk_warmup_s > 0:
        await wrk.run(
            url, script, duration_s=settings.wrk_warmup_s, connections=settings.connections, cpu=load_cpu
        )
        await asyncio.sleep(settings.settle_s)
    cpu0 = procs.cpu_seconds(ep.pid)
    res = await wrk.run(
        url, script, duration_s=settings.wrk_s, connections=settings.connections, cpu=load_cpu
    )
    cpu_s = procs.cpu_seconds(ep.pid) - cpu0
    return {
        key: res.ok_per_s,
        f"{key}_cpu_us": cpu_s / res.ok * 1e6 if res.ok else float("nan"),
        f"{key}_errors": res.status_errors + res.socket_errors,
    }


async def _latency(ep: Endpoint, s: Settings) -> dict[str, float]:
    await asyncio.sleep(s.settle_s)
    rate = ep.rates[0] if ep.rates else s.rate
    count, warmup = _scaled(s.count, rate / s.rate), _scaled(s.warmup, rate / s.rate)
    series = await openloop.fixed_rate(
        ep.chat_url, stream=False, rate=rate, count=count, warmup=warmup, headers=ep.headers(False)
    )
    total, lag = series.values("total_s"), series.values("lag_s")
    return {
        "lat_rate": rate,
        "lat_p50_ms": percentile(total, 50) * 1e3,
        "lat_p99_ms": percentile(total, 99) * 1e3,
        "lat_failures": series.failures,
        "lat_send_lag_p50_ms": percentile(lag, 50) * 1e3,
        "lat_send_lag_p99_ms": percentile(lag, 99) * 1e3,
    }


async def _ttfb(ep: Endpoint, s: Settings) -> dict[str, float]:
    await asyncio.sleep(s.settle_s)
    rate = ep.rates[1] if ep.rates else s.stream_rate
    count, warmup = (
        _scaled(s.stream_count, rate / s.stream_rate),
        _scaled(s.stream_warmup, rate / s.stream_rate),
    )
    series = await openloop.fixed_rate(
        ep.stream_url, stream=True, rate=rate, count=count, warmup=warmup, headers=ep.headers(True)
    )
    ttfb, total = series.values("ttfb_s"), series.values("total_s")
    return {
        "ttfb_rate": rate,
        "ttfb_p50_ms": percentile(ttfb, 50) * 1e3,
        "ttfb_p99_ms": percentile(ttfb, 99) * 1e3,
        "stream_p50_ms": percentile(total, 50) * 1e3,
        "stream_p99_ms": percentile(total, 99) * 1e3,
        "ttfb_failures": series.failures,
    }


def _scaled(n: int, factor: float) -> int:
    """Fewer requests at a lower rate (a slow peer), so that its phase lasts no longer than the others'."""
    return max(20, round(n * min(1.0, factor)))


_ADDED = {
    "added_p50_ms": "lat_p50_ms",
    "added_p99_ms": "lat_p99_ms",
    "added_ttfb_p50_ms": "ttfb_p50_ms",
    "added_ttfb_p99_ms": "ttfb_p99_ms",
    "added_stream_p50_ms": "stream_p50_ms",
    "added_awake_p50_ms": "awake_lat_p50_ms",
    "added_awake_ttfb_p50_ms": "awake_ttfb_p50_ms",
}
_ERRORS = (
    "rps_errors",
    "sps_errors",
    "lat_failures",
    "ttfb_failures",
    "awake_lat_failures",
    "awake_ttfb_failures",
)


def _add_overheads(figures: Figures) -> None:
    """Per round: gateway minus direct for the latency figures; a total of failed requests."""
    base = figures[DIRECT]
    for name, metrics in figures.items():
        metrics["errors"] = sum(metrics.get(k, 0) for k in _ERRORS)
        if name != DIRECT:
            for added, key in _ADDED.items():
                if key in metrics and key in base:
                    metrics[added] = metrics[key] - base[key]
