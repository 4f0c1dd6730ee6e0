"""PostgreSQL ledger benchmark (#20): ingest rate through the shipper, report latency from the rollups at
N rows, storage per million rows. Starts its own PostgreSQL server (tests/postgres_server.py).

    .venv/bin/python -m tests.bench.pg_ledger_bench --rows 1000000 --ship 200000 --writers 1,4

Figures:
- ``ingest_rows_per_s``: rows shipped from local SQLite outboxes into PostgreSQL (COPY + INSERT ... ON
  CONFLICT + rollup + budget totals, synchronous commit), per writer process and in total, with 1 and 4
  concurrent writer processes (each its own outbox of ``--ship`` rows).
- ``report_ms``: p50/p99 over 50 runs of the console's month-by-day report for one team
  (``spend(("day",), month, {"team": ...})``, rollup path) and a month-by-model report for all teams, at
  ``--rows`` raw rows loaded with generate_series over 30 days (rollups built as migration 2 builds them).
- ``bytes_per_million_rows``: raw partitions (with primary key index) per million rows; rollup size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from accounting import pg_schema
from accounting.ledger import AGGREGATES, COLUMNS, SQLiteLedger, connect, query_spend
from accounting.pg_ledger import PostgresLedger
from accounting.record import RequestRecord
from tests.postgres_server import PostgresServer
from wire.usage import Usage

MONTH0 = 1_793_491_200  # 2026-11-01T00:00:00Z


def _records(n: int, seed: int) -> list[RequestRecord]:
    return [
        RequestRecord(
            request_id=f"w{seed}-{i}",
            ts=time.time() - (i % 3600),
            key=f"k{i % 50}",
            team=f"t{i % 20}",
            task=f"task{i % 10}",
            route="default",
            requested_model="gpt-4o-mini",
            endpoint="chat/completions",
            stream=False,
            upstream_model=f"m{i % 8}",
            backend=f"b{i % 4}",
            status=200,
            usage=Usage(input_tokens=100 + i % 1000, output_tokens=50 + i % 300),
            cost_usd=Decimal(1000 + i % 100000).scaleb(-9),
            latency_s=0.1,
        )
        for i in range(n)
    ]


def _ingest(args: tuple[str, int, int]) -> tuple[int, float]:
    dsn, n, seed = args

    async def run() -> tuple[int, float]:
        d = tempfile.mkdtemp(prefix="pgbench-")
        local = SQLiteLedger(str(Path(d) / "outbox.sqlite3"), batch_size=20000)
        local.start()
        for r in _records(n, seed):
            local.append(r)
        await local.flushed(120)
        pg = PostgresLedger(local, dsn, interval_s=0.05, batch_size=10000)
        t = time.perf_counter()
        pg.start()
        await pg.caught_up(600)
        dt = time.perf_counter() - t
        await pg.close()
        await local.close()
        return pg.shipped, dt

    return asyncio.run(run())


def ingest(dsn: str, rows: int, writers: int) -> dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        t = time.perf_counter()
        res = pool.map(_ingest, [(dsn, rows, 1000 * writers + w) for w in range(writers)])
        wall = time.perf_counter() - t
    per = [n / dt for n, dt in res]
    total = sum(n for n, _ in res)
    slowest = max(dt for _, dt in res)
    return {
        "writers": writers,
        "rows_per_writer": rows,
        "per_writer_rows_per_s": round(statistics.median(per)),
        "total_rows_per_s": round(total / slowest),
        "wall_s_incl_outbox_fill": round(wall, 1),
    }


MONTH_S = 30 * 86400


def _row_exprs() -> dict[str, str]:
    """Column expressions of row ``g`` (valid in PostgreSQL and SQLite): one row per second of the month round
    robin, so any prefix ``0..N`` covers the whole month; 50 keys, 20 teams, 10 tasks, 8 models, 4 backends."""
    return {c: "0" for c in COLUMNS} | {
        "uid": "'g' || g",
        "request_id": "'r' || g",
        "ts": f"CAST({MONTH0} + g % {MONTH_S} AS DOUBLE PRECISION) + CAST(g / {MONTH_S} AS DOUBLE PRECISION) / 1000",
        "key": "'k' || (g % 50)",
        "team": "'t' || (g % 20)",
        "task": "'task' || (g % 10)",
        "route": "'default'",
        "requested_model": "'gpt-4o-mini'",
        "upstream_model": "'m' || (g % 8)",
        "backend": "'b' || (g % 4)",
        "endpoint": "'chat/completions'",
        "status": "200",
        "outcome": "'ok'",
        "error_type": "NULL",
        "input_tokens": "100 + g % 1000",
        "output_tokens": "50 + g % 300",
        "cost_usd": "'0.000001'",
        "cost_nusd": "1000 + g % 100000",
        "latency_s": "0.1",
        "ttft_s": "NULL",
        "priced": "1",
        "service_tier": "'standard'",
    }


def load(dsn: str, lo: int, hi: int) -> float:
    """Rows ``lo..hi-1`` over November 2026 with generate_series, each chunk's rollup rows upserted from the
    same series (as the shipper maintains them)."""
    cols = _row_exprs()
    sel = ", ".join(f"{cols[c]} AS {c}" for c in COLUMNS)
    dims = ", ".join(pg_schema.ROLLUP_DIMS)
    agg = dict(AGGREGATES)
    sums = ", ".join(f"({agg[s]})::bigint" for s in pg_schema.ROLLUP_SUMS)
    upsert = ", ".join(f"{s} = spend_hourly.{s} + EXCLUDED.{s}" for s in pg_schema.ROLLUP_SUMS)
    t = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        pg_schema.ensure_partitions(conn, [MONTH0 + i * pg_schema.DAY_S for i in range(31)])
        step = 2_000_000
        for a in range(lo, hi, step):
            series = f"generate_series({a}, {min(a + step, hi) - 1}) g"
            conn.execute(f"INSERT INTO requests ({', '.join(COLUMNS)}) SELECT {sel} FROM {series}")
            conn.execute(
                f"INSERT INTO spend_hourly (hour, {dims}, {', '.join(pg_schema.ROLLUP_SUMS)}) "
                f"SELECT {pg_schema.hour_of('ts')}, {dims}, {sums} FROM (SELECT {sel} FROM {series}) r "
                f"GROUP BY 1, {dims} ON CONFLICT ON CONSTRAINT spend_hourly_dims DO UPDATE SET {upsert}"
            )
            print(f"loaded {min(a + step, hi)} rows", flush=True)
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t


REPORTS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("month_by_day_one_team", ("day",), {"team": "t3"}),
    ("month_by_model_all_teams", ("model",), {}),
    ("month_by_day_and_key_one_team", ("day", "key"), {"team": "t3"}),
)
"""The console's spend queries over a month: its daily chart for a team, the model table, the key table."""


def _timed(fn: Any, runs: int) -> dict[str, Any]:
    times = []
    rows: Any = None
    for _ in range(runs):
        t = time.perf_counter()
        rows = fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 2),
        "p99_ms": round(times[min(len(times) - 1, round(len(times) * 0.99))], 2),
        "groups": len(rows),
    }


def reports(dsn: str, local: SQLiteLedger) -> dict[str, Any]:
    pg = PostgresLedger(local, dsn)
    return {
        name: _timed(lambda g=group_by, f=filters: pg.spend(g, MONTH0, MONTH0 + MONTH_S, f), 50)
        for name, group_by, filters in REPORTS
    }


def sqlite_reports(path: Path, rows: int, runs: int = 5) -> dict[str, Any]:
    """The same rows in the embedded SQLite ledger (its schema and indexes, filled with a recursive CTE) and
    the same reports through ``query_spend``, for comparison at a size both apply to."""
    led = SQLiteLedger(str(path))
    led.start()
    asyncio.run(led.close())
    cols = _row_exprs()
    t = time.perf_counter()
    conn = connect(str(path))
    conn.execute(
        f"WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < {rows - 1}) "
        f"INSERT INTO requests ({', '.join(COLUMNS)}) SELECT {', '.join(cols[c] for c in COLUMNS)} FROM s"
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    out: dict[str, Any] = {"rows": rows, "load_s": round(time.perf_counter() - t, 1)}
    out["bytes_per_million_rows"] = round(path.stat().st_size * 1_000_000 / rows)
    for name, group_by, filters in REPORTS:
        out[name] = _timed(
            lambda g=group_by, f=filters: query_spend(str(path), g, MONTH0, MONTH0 + MONTH_S, f), runs
        )
    return out


def storage(dsn: str, rows: int) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        raw = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'requests'::regclass"
        ).fetchone()[0]
        roll = conn.execute(
            "SELECT pg_total_relation_size('spend_hourly'), COUNT(*) FROM spend_hourly"
        ).fetchone()
    return {
        "raw_bytes_per_million_rows": round(int(raw) * 1_000_000 / rows),
        "rollup_bytes": int(roll[0]),
        "rollup_rows": int(roll[1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--rows", default="1000000", help="raw row counts for the reports (comma list, loaded in turn)"
    )
    ap.add_argument("--ship", type=int, default=100_000, help="rows per writer for the ingest figures")
    ap.add_argument(
        "--writers", default="1,4", help="writer process counts for the ingest figures ('' skips)"
    )
    ap.add_argument(
        "--sqlite-rows", type=int, default=0, help="the same reports on the SQLite ledger at N rows"
    )
    ap.add_argument("--json")
    a = ap.parse_args()
    srv = PostgresServer().start()
    result: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="pgbench-"))
    try:
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ingest")
            conn.execute("CREATE DATABASE reports")
        base = srv.dsn.rsplit("/", 1)[0]
        for db in ("ingest", "reports"):
            with psycopg.connect(f"{base}/{db}", autocommit=True) as conn:
                pg_schema.migrate(conn)
        if a.writers:
            result["ingest"] = [ingest(f"{base}/ingest", a.ship, int(w)) for w in a.writers.split(",")]
            print(json.dumps(result["ingest"]), flush=True)
        if a.sqlite_rows:
            result["sqlite"] = sqlite_reports(work / "ledger.sqlite3", a.sqlite_rows)
            print(json.dumps(result["sqlite"]), flush=True)
        local = SQLiteLedger(str(work / "unused.sqlite3"))
        result["sizes"] = []
        done = 0
        for n in (int(x) for x in a.rows.split(",")):
            size: dict[str, Any] = {"rows": n, "load_s": round(load(f"{base}/reports", done, n), 1)}
            done = n
            size["reports"] = reports(f"{base}/reports", local)
            size["storage"] = storage(f"{base}/reports", n)
            result["sizes"].append(size)
            print(json.dumps(size), flush=True)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
