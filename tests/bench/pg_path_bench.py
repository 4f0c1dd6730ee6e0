"""Request-path latency with the PostgreSQL ledger (#20): the same gateway with the database on, slow, paused
and down, each time next to a gateway with no database configured ("off"), in the same run.

    .venv/bin/python -m tests.bench.pg_path_bench                  # ~3 minutes
    .venv/bin/python -m tests.bench.pg_path_bench --rate 200 --count 2000 --json /tmp/pg_path.json

What runs (all on this machine, nothing pinned):
- a fake OpenAI upstream (``tests.fakes.openai_upstream.FakeOpenAI``, its own process);
- a PostgreSQL server (tests/postgres_server.py) behind a TCP proxy (its own process) that forwards every chunk
  either at once or ``--delay-ms`` later (SIGUSR1: delay on, SIGUSR2: off);
- gateway ``pg``: ``ledger: {backend: postgres, dsn: <the proxy>}``; gateway ``off``: the SQLite ledger only.
  Both ``pointsman serve --workers 1`` with a team budget (so budget refreshes read the ledger), admin key set.

States, in turn: ``on``; ``slow`` (every chunk each way delayed ``--delay-ms``: a far or overloaded database);
``paused`` (PostgreSQL SIGSTOPped: connections open, nothing answers); ``down`` (PostgreSQL killed:
connections refused); ``recovered`` (started again, the outbox draining while measured). In each state the
upstream alone (``direct``), ``off`` and ``pg`` are measured back to back (order rotating) with the open-loop
client (``tests.bench.openloop``: ``--rate`` requests/s, latency from the scheduled send), so ``pg / off``
compares runs seconds apart. Added latency = gateway - direct (p50, p99). After the last state: the time the
outbox took to drain and the database's row count against the requests ``pg`` answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from accounting import pg_schema
from tests.bench import fixtures, openloop
from tests.bench.ledger_bench import pct, serve_upstream, wait_ready
from tests.bench.pg_ledger_bench import loadavg
from tests.bench.procs import free_port
from tests.postgres_server import PostgresServer

ADMIN_KEY = "sk-admin-bench"
STATES = ("on", "slow", "paused", "down", "recovered")


# -- the delaying TCP proxy (its own process) ----------------------------------------------------------------------
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: list[float]) -> None:
    """Forward ``reader`` to ``writer``, each chunk ``delay[0]`` seconds (as of its arrival) after it arrived."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(pump())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay[0], data))
    except OSError:
        pass
    queue.put_nowait((time.monotonic() + delay[0], b""))
    try:
        await task
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


async def _serve_proxy(port: int, target: int, delay_s: float) -> None:
    delay = [0.0]
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: delay.__setitem__(0, delay_s))
    loop.add_signal_handler(signal.SIGUSR2, lambda: delay.__setitem__(0, 0.0))
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        try:
            await asyncio.gather(_pipe(cr, uw, delay), _pipe(ur, cw, delay))
        finally:
            uw.close()
            cw.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await done.wait()


# -- gateways ---------------------------------------------------------------------------------------------------------
def gateway_config(data_dir: Path, upstream: str, dsn: str | None) -> dict[str, Any]:
    ledger: dict[str, Any] = {"backend": "postgres", "dsn": dsn} if dsn else {}
    return {
        "admin_key": ADMIN_KEY,
        "server": {"data_dir": str(data_dir), "log_level": "warning"},
        "backends": {"up": {"type": "openai", "base_url": upstream, "api_key": fixtures.UPSTREAM_KEY}},
        "models": {fixtures.CHAT_MODEL: {"backend": "up", "upstream_model": "gpt-4o-mini"}},
        "keys": [{"name": "bench", "key": fixtures.API_KEY, "team": "perf"}],
        "accounting": {
            "ledger": ledger,
            "budgets": [{"scope": "team", "name": "perf", "daily_usd": "1000000"}],
        },
    }


def start_gateway(name: str, cfg: dict[str, Any], work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exe = shutil.which("pointsman") or str(Path(sys.executable).parent / "pointsman")
    with (work / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            [exe, "serve", "--config", str(path), "--port", str(port), "--workers", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/readyz")
    return proc, url


def measure(base: str, rate: float, count: int, warmup: int) -> dict[str, Any]:
    series = asyncio.run(
        openloop.fixed_rate(base + "/chat/completions", stream=False, rate=rate, count=count, warmup=warmup)
    )
    total = series.values("total_s")
    return {
        "ok": len(total),
        "failed": series.failures,
        "p50_ms": round(pct(total, 0.5) * 1000, 3),
        "p99_ms": round(pct(total, 0.99) * 1000, 3),
        "max_ms": round(max(total) * 1000, 3) if total else None,
    }


def ledger_status(url: str) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(
        url + "/admin/ledger", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ).json()
    return {"reachable": doc.get("reachable"), "outbox_rows": doc.get("outbox", {}).get("rows")}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def summarize(state: dict[str, Any]) -> dict[str, Any]:
    d, off, pg = state["direct"], state["off"], state["pg"]
    out: dict[str, Any] = {}
    for q in ("p50_ms", "p99_ms"):
        added_off, added_pg = off[q] - d[q], pg[q] - d[q]
        out[q] = {"direct": d[q], "off": off[q], "pg": pg[q], "pg/off": _ratio(pg[q], off[q])}
        out["added_" + q] = {
            "off": round(added_off, 3),
            "pg": round(added_pg, 3),
            "pg/off": _ratio(added_pg, added_off),
        }
    out["failed"] = {"off": off["failed"], "pg": pg["failed"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100, help="requests per second")
    ap.add_argument("--count", type=int, default=1000, help="requests measured per target and state")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--delay-ms", type=float, default=200, help="the slow state's delay per chunk, each way")
    ap.add_argument("--settle-s", type=float, default=2.0, help="wait after entering a state")
    ap.add_argument("--json")
    ap.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--serve-proxy", nargs=2, type=int, metavar=("PORT", "TARGET"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_upstream:
        serve_upstream(a.serve_upstream)
        return 0
    if a.serve_proxy:
        asyncio.run(_serve_proxy(a.serve_proxy[0], a.serve_proxy[1], a.delay_ms / 1000))
        return 0

    work = Path(tempfile.mkdtemp(prefix="pointsman-pg-path-"))
    srv = PostgresServer().start()
    procs: list[subprocess.Popen[bytes]] = []

    def child(*args: str) -> None:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.bench.pg_path_bench", *args], start_new_session=True
            )
        )

    out: dict[str, Any] = {"rate": a.rate, "count": a.count, "delay_ms": a.delay_ms, "states": {}}
    try:
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            pg_schema.migrate(conn)
        up_port, proxy_port = free_port(), free_port()
        child("--serve-upstream", str(up_port))
        child("--serve-proxy", str(proxy_port), str(srv.port), "--delay-ms", str(a.delay_ms))
        proxy = procs[-1]
        wait_ready(f"http://127.0.0.1:{up_port}/health")
        upstream = f"http://127.0.0.1:{up_port}/v1"
        dsn = srv.dsn.replace(f":{srv.port}/", f":{proxy_port}/")
        gateways: dict[str, str] = {}
        for name, gw_dsn in (("off", None), ("pg", dsn)):
            (work / name).mkdir()
            proc, url = start_gateway(name, gateway_config(work / name, upstream, gw_dsn), work)
            procs.append(proc)
            gateways[name] = url
        targets = {"direct": upstream, "off": gateways["off"] + "/v1", "pg": gateways["pg"] + "/v1"}
        answered = 0
        for i, state in enumerate(STATES):
            if state == "slow":
                proxy.send_signal(signal.SIGUSR1)
            elif state == "paused":
                proxy.send_signal(signal.SIGUSR2)
                srv.pause()
            elif state == "down":
                srv.kill()
            elif state == "recovered":
                srv.start()
            time.sleep(a.settle_s)
            res: dict[str, Any] = {"loadavg_before": loadavg()}
            order = list(targets)[i % 3 :] + list(targets)[: i % 3]
            for name in order:
                res[name] = measure(targets[name], a.rate, a.count, a.warmup)
                if name == "pg":
                    answered += res[name]["ok"] + a.warmup
            res["loadavg_after"] = loadavg()
            res["pg_ledger"] = ledger_status(gateways["pg"])
            res["summary"] = summarize(res)
            out["states"][state] = res
            print(state, json.dumps(res["summary"]), res["pg_ledger"], res["loadavg_before"], flush=True)
        t = time.monotonic()
        while ledger_status(gateways["pg"])["outbox_rows"] and time.monotonic() - t < 120:
            time.sleep(0.2)
        out["drain_s_after_recovery"] = round(time.monotonic() - t, 1)
        with psycopg.connect(srv.dsn) as conn:
            rows = conn.execute("SELECT COUNT(*), COUNT(DISTINCT uid) FROM requests").fetchone()
        out["database"] = {"rows": rows[0] if rows else 0, "distinct": rows[1] if rows else 0}
        out["pg_answered"] = answered
        print("after recovery:", out["database"], "pg answered", answered, flush=True)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)  # each started in its own session
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({s: v["summary"] for s, v in out["states"].items()}, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
