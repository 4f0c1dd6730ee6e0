"""How long a ``/metrics`` scrape takes with ``--workers N`` and many series (issue #17: 4 workers, 10,000
series, at most 100 ms).

    .venv/bin/python -m tests.bench.metrics_scrape                      # 4 workers, 10,000 series, ~1 minute
    .venv/bin/python -m tests.bench.metrics_scrape --workers 4 --series 20000 --json /tmp/scrape.json

``pointsman serve --workers N`` (each worker keeps its metrics in its own files under
``PROMETHEUS_MULTIPROC_DIR``; a scrape merges them all) with a config of many models and many keys, each key
its own team, so every (model, team) pair is a bounded label combination of its own. Traffic is sent pair by
pair over fresh connections, so each pair's requests spread over the workers, until the scrape holds the asked
number of series (samples of every metric family, histogram buckets included); half the models stream, so
the streaming histograms (time to first token, time per output token) have series too. Then ``/metrics`` is
scraped ``--scrapes`` times, one after the other, each timed from sending to the last byte. ``run.py`` runs it
too (``--scrape``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
import yaml

from tests.bench import fixtures, openloop, procs, upstream
from tests.bench.report import percentile
from tests.bench.targets import pointsman_config, tree_env
from tests.bench.upstream import Upstream

LIMIT_MS = 100.0
GRID = 40  # models and keys configured: at most GRID * GRID label pairs


def config(up: Upstream, port: int, data_dir: Path) -> dict[str, Any]:
    doc = pointsman_config(up, port, 0)
    doc["server"]["data_dir"] = str(data_dir)
    doc["models"] |= {
        model(i): {
            "backend": "upstream_stream" if streams(i) else "up",
            "upstream_model": fixtures.UPSTREAM_MODEL,
        }
        for i in range(GRID)
    }
    doc["keys"] += [{"name": f"k{j}", "key": secret(j), "team": f"team{j}"} for j in range(GRID)]
    return doc


def model(i: int) -> str:
    return f"m{i}"


def streams(i: int) -> bool:
    return i % 2 == 1


def secret(j: int) -> str:
    return f"sk-scrape-{j:04d}"


def pairs() -> list[tuple[int, int]]:
    """(model, key) pairs, in an order that spreads new models and new teams evenly."""
    return sorted(((i, j) for i in range(GRID) for j in range(GRID)), key=lambda p: (max(p), p))


async def send_pair(session: aiohttp.ClientSession, url: str, i: int, j: int, times: int) -> int:
    """``times`` requests for one (model, key) pair; the number that succeeded."""
    body = json.loads(fixtures.request_body(stream=streams(i)))
    body["model"] = model(i)
    data = json.dumps(body).encode()
    headers = {"authorization": f"Bearer {secret(j)}", "content-type": "application/json"}
    ok = 0
    for _ in range(times):
        async with session.post(url, data=data, headers=headers) as resp:
            await resp.read()
            ok += resp.status == 200
    return ok


async def series_count(session: aiohttp.ClientSession, url: str) -> tuple[int, int, float]:
    """(samples in one scrape, its bytes, its wall time in ms)."""
    t0 = time.perf_counter()
    async with session.get(url) as resp:
        text = await resp.read()
    ms = (time.perf_counter() - t0) * 1e3
    if resp.status != 200:
        raise RuntimeError(f"/metrics answered {resp.status}: {text[:200]!r}")
    n = sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#"))
    return n, len(text), ms


async def measure(
    up: Upstream,
    binary: Path,
    workdir: Path,
    *,
    workers: int = 4,
    series: int = 10_000,
    scrapes: int = 20,
    cpu: int | None = None,
    log: Callable[[str], None] = print,
    tree: Path | None = None,
) -> dict[str, Any]:
    """Start the gateway with ``workers`` workers, fill it to ``series`` series, time ``scrapes`` scrapes
    (``tree``: a checkout it imports instead of the installed one, a compiled copy)."""
    port = procs.free_port()
    home = workdir / "scrape"
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "pointsman.yaml"
    cfg.write_text(yaml.safe_dump(config(up, port, home / "data"), sort_keys=False))
    metrics_dir = home / "prometheus"
    metrics_dir.mkdir(exist_ok=True)
    argv = [str(binary), "serve", "--config", str(cfg), "--port", str(port), "--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # inherited by the gateway: its files are here
    try:
        started, proc = await openloop.cold_start(
            lambda: procs.spawn(procs.pinned(cpu, argv), home / "pointsman.log", dict(tree_env(tree))),
            f"{base}/v1/chat/completions",
        )
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        todo = pairs()
        sent = ok = 0
        connector = aiohttp.TCPConnector(force_close=True)  # a fresh connection per request: any worker
        async with aiohttp.ClientSession(connector=connector) as fresh, aiohttp.ClientSession() as scraper:
            url = f"{base}/v1/chat/completions"
            count, _, _ = await series_count(scraper, f"{base}/metrics")
            batch = 8
            while count < series and sent < len(todo):
                chunk = todo[sent : sent + batch]
                results = await asyncio.gather(*(send_pair(fresh, url, i, j, 2 * workers) for i, j in chunk))
                ok += sum(results)
                before, sent = count, sent + len(chunk)
                count, _, _ = await series_count(scraper, f"{base}/metrics")
                per_pair = max(1.0, (count - before) / len(chunk))
                batch = max(1, min(256, math.ceil((series - count) / per_pair)))
            log(
                f"  scrape: {count:,} series from {sent} (model, team) pairs, {ok:,} requests, {workers} workers"
            )
            times: list[float] = []
            size = 0
            for _ in range(scrapes):
                n, size, ms = await series_count(scraper, f"{base}/metrics")
                times.append(ms)
        files = len(list(metrics_dir.glob("*.db")))
    finally:
        await procs.stop(proc)
    return {
        "workers": workers,
        "series": count,
        "pairs": sent,
        "requests": ok,
        "files": files,
        "bytes": size,
        "scrape_p50_ms": percentile(times, 50),
        "scrape_p95_ms": percentile(times, 95),
        "scrape_max_ms": max(times),
        "cold_start_s": started,
    }


def text(result: dict[str, Any]) -> str:
    verdict = "PASS" if result["scrape_p50_ms"] <= LIMIT_MS else "FAIL"
    return (
        f"/metrics with {result['workers']} workers and {result['series']:,} series ({result['files']} files, "
        f"{result['bytes'] / 1024:,.0f} KiB): p50 {result['scrape_p50_ms']:.1f} ms, p95 "
        f"{result['scrape_p95_ms']:.1f} ms, max {result['scrape_max_ms']:.1f} ms\n"
        f"  {verdict}  scrape <= {LIMIT_MS:g} ms (p50)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--scrapes", type=int, default=20)
    p.add_argument("--json", type=Path)
    p.add_argument("--pointsman-bin", type=Path, default=Path(sys.executable).with_name("pointsman"))
    args = p.parse_args(argv)

    async def go(workdir: Path) -> dict[str, Any]:
        up = await upstream.start(workdir / "nginx", None)
        try:
            return await measure(
                up,
                args.pointsman_bin,
                workdir,
                workers=args.workers,
                series=args.series,
                scrapes=args.scrapes,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
        finally:
            await procs.stop(up.proc)

    with tempfile.TemporaryDirectory(prefix="pointsman-scrape-") as tmp:
        result = uvloop.run(go(Path(tmp)))
    print(text(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
