"""Ledger benchmark: insert throughput into the SQLite spend ledger up to 1M rows, and what the ledger costs
the request path when it is empty and when it holds 1M rows.

    .venv/bin/python -m tests.bench.ledger_bench                 # 1M rows, ~2-3 minutes
    .venv/bin/python -m tests.bench.ledger_bench --rows 200000 --skip-gateway --json /tmp/ledger.json

Figures:
- ``append_us``: the request-path part of recording one request (``SQLiteLedger.append``: row + queue),
  and ``finish_us``: the whole ``Accountant.finish`` (price, metrics, ledger queue, limits), median and p99,
  with the ledger empty and at N rows.
- ``insert_rows_per_s``: the background writer's sustained throughput (batched transactions) filling to N.
- ``commit_ms``: one 2,000-row batch committed at 0 and at N rows (indexes must keep it flat).
- queries at N rows: ``/admin/spend``-style group-bys and the per-bucket budget lookup.
- end to end (unless ``--skip-gateway``): ``pointsman serve`` (1 worker) in front of a fake upstream
  process; open-loop 200 req/s (``tests.bench.openloop``), latency p50/p99 with a fresh ledger and with
  N rows already in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml

from accounting.accountant import Accountant
from accounting.config import AccountingConfig
from accounting.ledger import SQLiteLedger
from accounting.ledger_reports import query_spend
from accounting.record import RequestRecord
from tests.bench import fixtures, openloop
from wire.usage import Usage

KEYS = [f"key-{i}" for i in range(50)]
TEAMS = [f"team-{i}" for i in range(10)]
TASKS = [f"task-{i}" for i in range(20)]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet", "llama-8b", "o3-mini", "gpt-4.1", "embed", "qwen-7b"]


def record(i: int, now: float, rng: random.Random, spread_s: float = 30 * 86400) -> RequestRecord:
    """A finished request; ``spread_s`` spreads arrival times over the past (the fill covers 30 days)."""
    k = rng.randrange(len(KEYS))
    rec = RequestRecord(
        request_id=f"bench-{i}",
        ts=now - rng.random() * spread_s,
        key=KEYS[k],
        team=TEAMS[k % len(TEAMS)],
        task=TASKS[rng.randrange(len(TASKS))],
        route="default",
        requested_model=MODELS[i % len(MODELS)],
        endpoint="chat/completions",
        stream=bool(i & 1),
        upstream_model=MODELS[i % len(MODELS)],
        backend="up",
        status=200,
        usage=Usage(rng.randrange(10, 4000), rng.randrange(1, 1000)),
        has_usage=True,
        cost_usd=Decimal(rng.randrange(1, 10**6)) / Decimal(10**9),
        latency_s=rng.random(),
        ttft_s=0.1,
    )
    return rec


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def time_calls(fn: Any, args: list[Any]) -> dict[str, float]:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append((time.perf_counter() - t) * 1e6)
    return {"p50": round(statistics.median(out), 2), "p99": round(pct(out, 0.99), 2)}


def commit_ms(ledger: SQLiteLedger, rng: random.Random, start: int) -> float:
    """Time one 2,000-row batch through the writer (queued, then committed by the writer thread)."""
    recs = [record(start + i, time.time(), rng, spread_s=1.0) for i in range(2000)]  # live traffic: now
    target = ledger.written + len(recs)
    t = time.perf_counter()
    for r in recs:
        ledger.append(r)
    ledger._wake.set()
    while ledger.written < target:
        time.sleep(0.0005)
    return round((time.perf_counter() - t) * 1000, 2)


async def finish_cost(acct: Accountant, rng: random.Random, n: int, start: int) -> dict[str, float]:
    recs = [record(start + i, time.time(), rng, spread_s=1.0) for i in range(n)]
    return time_calls(acct.finish, recs)


def ledger_part(rows: int, work: Path) -> dict[str, Any]:
    rng = random.Random(7)
    res: dict[str, Any] = {"rows": rows}
    acct = Accountant(AccountingConfig(), str(work))
    assert acct.ledger is not None
    ledger = acct.ledger

    async def run() -> None:
        await acct.start()
        res["finish_us_empty"] = await finish_cost(acct, rng, 20_000, 10**8)
        res["append_us_empty"] = time_calls(
            ledger.append, [record(2 * 10**8 + i, time.time(), rng) for i in range(20_000)]
        )
        await ledger.flushed(60)
        res["commit_ms_empty"] = commit_ms(ledger, rng, 3 * 10**8)
        # fill to N rows through the writer, never more than 100k queued (so nothing is dropped)
        t = time.perf_counter()
        written0 = ledger.written
        i = 0
        while i < rows:
            while ledger.pending > 100_000:
                await asyncio.sleep(0.01)
            for _ in range(min(10_000, rows - i)):
                ledger.append(record(i, time.time(), rng))
                i += 1
            await asyncio.sleep(0)
        await ledger.flushed(600)
        dt = time.perf_counter() - t
        res["insert_rows_per_s"] = round((ledger.written - written0) / dt)
        res["fill_s"] = round(dt, 1)
        res["dropped"] = ledger.dropped
        res["finish_us_at_n"] = await finish_cost(acct, rng, 20_000, 4 * 10**8)
        res["append_us_at_n"] = time_calls(
            ledger.append, [record(5 * 10**8 + i, time.time(), rng) for i in range(20_000)]
        )
        await ledger.flushed(60)
        res["commit_ms_at_n"] = commit_ms(ledger, rng, 6 * 10**8)
        q: dict[str, float] = {}
        for name, gb, since, filters in [
            ("all_by_task_model", ["task", "model"], None, None),
            ("all_by_day", ["day"], None, None),
            ("last_day_by_key", ["key"], time.time() - 86400, None),
            ("last_day_one_team", ["model"], time.time() - 86400, {"team": "team-3"}),
        ]:
            t = time.perf_counter()
            query_spend(ledger.path, gb, since, None, filters)
            q[name] = round((time.perf_counter() - t) * 1000, 1)
        t = time.perf_counter()
        for _ in range(100):
            ledger.budget_spend([("key", "key-1", "d:2026-01-01"), ("team", "team-1", "m:2026-01")])
        q["budget_lookup"] = round((time.perf_counter() - t) * 10, 3)
        res["query_ms_at_n"] = q
        await acct.close()

    asyncio.run(run())
    res["file_mb"] = round(sum(p.stat().st_size for p in work.glob("ledger.sqlite3*")) / 1e6, 1)
    return res


def serve_upstream(port: int) -> None:
    from tests.fakes.openai_upstream import FakeOpenAI
    from tests.fakes.server import ThreadedServer

    fake = FakeOpenAI(name="bench")
    fake.server = ThreadedServer(fake.app, port=port).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    fake.stop()


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def gateway_latency(data_dir: Path, upstream: str, work: Path, rate: float, count: int) -> dict[str, float]:
    from tests.fakes.server import free_port

    port = free_port()
    cfg = {
        "server": {"data_dir": str(data_dir), "log_level": "warning"},
        "backends": {"up": {"type": "openai", "base_url": upstream, "api_key": fixtures.UPSTREAM_KEY}},
        "models": {
            fixtures.CHAT_MODEL: {"backend": "up", "upstream_model": "gpt-4o-mini"},
            fixtures.STREAM_MODEL: {"backend": "up", "upstream_model": "gpt-4o-mini"},
        },
        "keys": [{"name": "bench", "key": fixtures.API_KEY, "team": "perf"}],
    }
    path = work / f"gw-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exe = shutil.which("pointsman") or str(Path(sys.executable).parent / "pointsman")
    proc = subprocess.Popen(
        [exe, "serve", "--config", str(path), "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
        series = asyncio.run(
            openloop.fixed_rate(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                stream=False,
                rate=rate,
                count=count,
                warmup=200,
            )
        )
        total = series.values("total_s")
        return {
            "ok": len(total),
            "failed": series.failures,
            "p50_ms": round(pct(total, 0.5) * 1000, 3),
            "p99_ms": round(pct(total, 0.99) * 1000, 3),
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--skip-gateway", action="store_true", help="only the ledger figures")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved end-to-end rounds per condition")
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    work = Path(tempfile.mkdtemp(prefix="pointsman-ledger-bench-"))
    try:
        full = work / "full"
        full.mkdir()
        out: dict[str, Any] = {"ledger": ledger_part(args.rows, full)}
        print(json.dumps(out["ledger"], indent=2), flush=True)
        if not args.skip_gateway:
            from tests.fakes.server import free_port

            up_port = free_port()
            up = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.ledger_bench", "--serve-upstream", str(up_port)],
                start_new_session=True,
            )
            try:
                wait_ready(f"http://127.0.0.1:{up_port}/health")
                empty = work / "empty"
                empty.mkdir()
                upstream = f"http://127.0.0.1:{up_port}/v1"
                runs: dict[str, list[dict[str, float]]] = {"empty": [], f"{args.rows}_rows": []}
                for r in range(args.rounds):  # interleaved, so machine drift hits both alike
                    order = list(runs) if r % 2 == 0 else list(reversed(runs))
                    for name in order:
                        d = empty if name == "empty" else full
                        runs[name].append(gateway_latency(d, upstream, work, args.rate, args.count))
                        print(f"round {r + 1} {name}: {runs[name][-1]}", flush=True)
                out["gateway_latency"] = {
                    name: {
                        "p50_ms_median": statistics.median(x["p50_ms"] for x in v),
                        "p99_ms_median": statistics.median(x["p99_ms"] for x in v),
                        "rounds": v,
                    }
                    for name, v in runs.items()
                }
                print(
                    json.dumps(
                        {
                            k: {f: v[f] for f in ("p50_ms_median", "p99_ms_median")}
                            for k, v in out["gateway_latency"].items()
                        }
                    ),
                    flush=True,
                )
            finally:
                up.send_signal(signal.SIGTERM)
                up.wait(10)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
