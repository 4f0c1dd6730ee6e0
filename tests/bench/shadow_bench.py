"""Shadow benchmark: the primary's latency with shadowing at 100% against no shadowing, in the same run.

    .venv/bin/python -m tests.bench.shadow_bench                      # ~1-2 minutes
    .venv/bin/python -m tests.bench.shadow_bench --rate 100 --count 1000 --rounds 3 --json /tmp/shadow.json

One ``pointsman serve`` process (1 worker) in front of one fake upstream process (``tests.shadow.fakes``:
frontier answers after ``--delay-ms``). The gateway has four routes that differ only in their shadow:

- ``none``: no shadow;
- ``ok``: every request shadowed to a candidate twice as fast;
- ``hang``: every request shadowed to a candidate that never answers (shadow timeout 5 s, 32 in flight, 32
  queued: the rest are dropped and counted);
- ``dead``: every request shadowed to a candidate whose port refuses connections.

Open-loop load (requests scheduled on a clock, latency measured from the scheduled send, so a slow response
cannot hide behind the next one) goes to each route in turn, interleaved over ``--rounds`` so machine drift hits
all alike. Reported per route: client-side p50/p99 of the total latency (and of the time to first byte with
``--stream``), failures, and the shadow runner's peak in-flight and queued counts (polled during the run) with
its drop counters, showing the queue stays bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

ADMIN = "sk-bench-admin-0001"
KEY = "sk-bench-client-0001"
ROUTES = ("none", "ok", "hang", "dead")


def serve_upstream(port: int, delay_s: float) -> None:
    from tests.fakes.server import ThreadedServer
    from tests.shadow.fakes import ModelSpec, ModelZoo

    zoo = ModelZoo(
        {
            "frontier": ModelSpec(delay_s=delay_s),
            "cand": ModelSpec(delay_s=delay_s / 2),
            "cand-hang": ModelSpec(mode="hang"),
        }
    )
    zoo.server = ThreadedServer(zoo.app, port=port).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    zoo.stop()


def gateway_config(upstream: str, data_dir: Path) -> dict[str, Any]:
    def route(name: str, shadow: dict[str, Any] | None) -> dict[str, Any]:
        r: dict[str, Any] = {
            "name": name,
            "match": {"model": f"bench-{name}"},
            "targets": [{"model": "frontier"}],
        }
        if shadow is not None:
            r["shadow"] = {"sample_rate": 1.0, "compare": ["exact", "token_f1"], **shadow}
        return r

    return {
        "admin_key": ADMIN,
        "server": {"data_dir": str(data_dir), "log_level": "warning"},
        "backends": {
            "up": {"type": "openai", "base_url": upstream},
            "cand": {"type": "openai", "base_url": upstream},
            "dead": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 1},
        },
        "models": {
            "frontier": {"backend": "up"},
            "cand": {"backend": "cand"},
            "cand-hang": {"backend": "cand"},
            "cand-dead": {"backend": "dead"},
        },
        "keys": [{"name": "bench", "key": KEY, "team": "perf"}],
        "routes": [
            route("none", None),
            route("ok", {"model": "cand"}),
            route("hang", {"model": "cand-hang", "timeout_s": 5, "max_concurrency": 32, "queue_size": 32}),
            route("dead", {"model": "cand-dead"}),
        ],
    }


def body(route: str, i: int, stream: bool) -> bytes:
    doc: dict[str, Any] = {
        "model": f"bench-{route}",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"Extract item {i} as JSON."}],
    }
    if stream:
        doc["stream"] = True
    return json.dumps(doc).encode()


async def one(
    session: aiohttp.ClientSession, url: str, data: bytes, scheduled: float
) -> tuple[float, float, bool]:
    first = 0.0
    try:
        async with session.post(
            url, data=data, headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        ) as resp:
            while await resp.content.readany():
                if not first:
                    first = time.perf_counter()
            end = time.perf_counter()
            ok = resp.status == 200
    except (TimeoutError, aiohttp.ClientError):
        end, ok = time.perf_counter(), False
    return (first or end) - scheduled, end - scheduled, ok


async def fixed_rate(
    base: str, route: str, rate: float, count: int, warmup: int, stream: bool, start_item: int
) -> dict[str, Any]:
    url = base + "/v1/chat/completions"
    peak = {"in_flight": 0, "queued": 0}
    stop = asyncio.Event()

    async def poll() -> None:
        async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {ADMIN}"}) as c:
            while not stop.is_set():
                try:
                    lanes = (await c.get("/admin/shadow/status", timeout=2)).json()["lanes"].get(route)
                except (httpx.HTTPError, ValueError):
                    lanes = None
                if lanes:
                    peak["in_flight"] = max(peak["in_flight"], lanes["in_flight"])
                    peak["queued"] = max(peak["queued"], lanes["queued"])
                await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        tasks = []
        t0 = time.perf_counter() + 0.01
        for i in range(warmup + count):
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(one(session, url, body(route, start_item + i, stream), scheduled))
            )
        results = (await asyncio.gather(*tasks))[warmup:]
    stop.set()
    await poller
    ok = [r for r in results if r[2]]
    total = sorted(r[1] for r in ok)
    ttfb = sorted(r[0] for r in ok)
    out: dict[str, Any] = {
        "ok": len(ok),
        "failed": len(results) - len(ok),
        "p50_ms": round(pct(total, 0.5) * 1000, 2),
        "p99_ms": round(pct(total, 0.99) * 1000, 2),
        "peak_in_flight": peak["in_flight"],
        "peak_queued": peak["queued"],
    }
    if stream:
        out["ttfb_p50_ms"] = round(pct(ttfb, 0.5) * 1000, 2)
        out["ttfb_p99_ms"] = round(pct(ttfb, 0.99) * 1000, 2)
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def shadow_counts(base: str) -> dict[str, Any]:
    r = httpx.get(
        base + "/admin/shadow/report",
        params={"by_task": "false"},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=120,
    ).json()
    return {
        x["route"]: {k: x["counts"][k] for k in ("sampled", "paired", "candidate_failed", "dropped")}
        | {"dropped_by_reason": x["counts"]["dropped_by_reason"]}
        for x in r["routes"]
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second per run")
    ap.add_argument("--count", type=int, default=1000, help="measured requests per run")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved runs per route")
    ap.add_argument("--delay-ms", type=float, default=20.0, help="the frontier fake's response time")
    ap.add_argument(
        "--stream", action="store_true", help="streamed requests (reports time to first byte too)"
    )
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream, args.delay_ms / 1000)
        return 0
    from tests.fakes.server import free_port

    work = Path(tempfile.mkdtemp(prefix="pointsman-shadow-bench-"))
    up_port, gw_port = free_port(), free_port()
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bench.shadow_bench",
            "--serve-upstream",
            str(up_port),
            "--delay-ms",
            str(args.delay_ms),
        ],
        start_new_session=True,
    )
    gw: subprocess.Popen[bytes] | None = None
    try:
        cfg_path = work / "gateway.yaml"
        cfg_path.write_text(yaml.safe_dump(gateway_config(f"http://127.0.0.1:{up_port}/v1", work / "data")))
        exe = shutil.which("pointsman") or str(Path(sys.executable).parent / "pointsman")
        log = (work / "gateway.log").open("wb")
        gw = subprocess.Popen(
            [exe, "serve", "--config", str(cfg_path), "--port", str(gw_port), "--workers", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{gw_port}"
        wait_ready(base + "/readyz")
        time.sleep(3)  # let the accountant's background tokenizer load finish before measuring
        runs: dict[str, list[dict[str, Any]]] = {r: [] for r in ROUTES}
        item = 0
        for rnd in range(args.rounds):
            order = list(ROUTES) if rnd % 2 == 0 else list(reversed(ROUTES))
            for route in order:
                load = os.getloadavg()[0]
                res = asyncio.run(
                    fixed_rate(base, route, args.rate, args.count, args.warmup, args.stream, item)
                )
                res["loadavg_1m"] = round(load, 2)
                item += args.count + args.warmup
                runs[route].append(res)
                print(f"round {rnd + 1} {route:>4}: {res}", flush=True)
                time.sleep(1.0)
        time.sleep(6)  # hanging shadows time out (5 s) and their pairs are written
        summary: dict[str, Any] = {
            "rate": args.rate,
            "count": args.count,
            "rounds": args.rounds,
            "stream": args.stream,
            "frontier_delay_ms": args.delay_ms,
            "cpus": os.cpu_count(),
            "routes": {
                r: {
                    "p50_ms_median": round(statistics.median(x["p50_ms"] for x in v), 2),
                    "p99_ms_median": round(statistics.median(x["p99_ms"] for x in v), 2),
                    "p50_ms_best": min(x["p50_ms"] for x in v),
                    "p99_ms_best": min(x["p99_ms"] for x in v),
                    "failed": sum(x["failed"] for x in v),
                    "peak_in_flight": max(x["peak_in_flight"] for x in v),
                    "peak_queued": max(x["peak_queued"] for x in v),
                    **(
                        {
                            "ttfb_p50_ms_median": round(statistics.median(x["ttfb_p50_ms"] for x in v), 2),
                            "ttfb_p99_ms_median": round(statistics.median(x["ttfb_p99_ms"] for x in v), 2),
                        }
                        if args.stream
                        else {}
                    ),
                    "runs": v,
                }
                for r, v in runs.items()
            },
            "pairs": shadow_counts(base),
        }
        print()
        print("medians over rounds (best round in brackets: load only ever adds latency)")
        head = f"{'route':<6}{'p50 ms':>18}{'p99 ms':>20}{'failed':>8}{'peak in flight':>16}{'peak queued':>13}  pairs"
        print(head)
        for r in ROUTES:
            s = summary["routes"][r]
            pairs = summary["pairs"].get(r, {})
            print(
                f"{r:<6}{s['p50_ms_median']:>9} [{s['p50_ms_best']:>6}]{s['p99_ms_median']:>10} [{s['p99_ms_best']:>7}]"
                f"{s['failed']:>8}{s['peak_in_flight']:>16}"
                f"{s['peak_queued']:>13}  {pairs}"
            )
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
    finally:
        for p in (gw, up):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
