"""PostgreSQL ledger benchmark (#20): ingest rate through the shipper, report latency from the rollups at
N rows, storage per million rows, and the same reports on the SQLite ledger in the same run. Starts its own
PostgreSQL server (tests/postgres_server.py, with ``SERVER_SETTINGS``).

    .venv/bin/python -m tests.bench.pg_ledger_bench --rows 1000000 --ship 50000 --writers 1,4
    .venv/bin/python -m tests.bench.pg_ledger_bench --rows 1000000,10000000,100000000 \
        --sqlite-rows 1000000,10000000 --writers 1,4 --ship 50000 --jobs 2 --json /tmp/pg.json

Figures:
- ``ingest``: rows shipped from local SQLite outboxes into PostgreSQL (COPY + INSERT ... ON CONFLICT + rollup
  + budget totals, synchronous commit), per writer process and in total, with 1 and 4 concurrent writer
  processes (each its own outbox of ``--ship`` rows).
- ``sizes[].reports``: p50/p99 over ``--runs`` runs of each of ``REPORTS`` (the month-by-day report for one
  team, month-by-model for all teams, and the console's pages as the ``/admin/spend`` queries they make)
  through ``PostgresLedger.spend``, at each ``--rows`` count; ``raw_rows_read`` is what their plans read
  from raw rows (0: all from the rollup).
- ``sizes[].storage``: raw partitions (with the primary key index) per million rows; the rollup's size and rows.
- ``sqlite``: the same rows in the embedded SQLite ledger at each ``--sqlite-rows`` count, the same reports
  through ``query_spend``.
- ``*loadavg``: /proc/loadavg before and after each phase.

Rows (``_row_exprs``): row ``g`` at second ``g mod 30 days`` of November 2026 (so from 2.6M rows on every
day is covered), 50 keys (``--keys``), 20 teams, 10 tasks, 8 models, 4 backends (200 combinations each hour,
so 144,000 rollup rows for the month; ``--keys 3600``: 3,600 an hour, 2.6M for the month). ``load`` adds
rows in bulk, server-side: one day partition at a time (detached, its primary key rebuilt once, attached again),
the rollup rows and budget totals the shipper would write for them
(tests/fleet/test_pg_bench_loader.py holds it to that).
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from accounting import pg_schema
from accounting.ledger import COLUMNS, SQLiteLedger, connect
from accounting.ledger_reports import query_spend
from accounting.ledger_rollups import roll_up
from accounting.pg_ledger import PostgresLedger, spend_sql
from accounting.record import RequestRecord
from accounting.spend_report import AGGREGATES
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
        shutil.rmtree(d, ignore_errors=True)
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
DAY_S = pg_schema.DAY_S


def _row_exprs(keys: int = 50) -> dict[str, str]:
    """Column expressions of row ``g`` (valid in PostgreSQL and SQLite): one row per second of the month round
    robin, so any prefix ``0..N`` covers the whole month; 50 keys, 20 teams, 10 tasks, 8 models, 4 backends."""
    return {c: "0" for c in COLUMNS} | {
        "uid": "'g' || g",
        "request_id": "'r' || g",
        "ts": f"CAST({MONTH0} + g % {MONTH_S} AS DOUBLE PRECISION) + CAST(g / {MONTH_S} AS DOUBLE PRECISION) / 1000",
        "key": f"'k' || (g % {keys})",
        "team": "'t' || (g % 20)",
        "task": "'task' || (g % 10)",
        "route": "'default'",
        "requested_model": "'gpt-4o-mini'",
        "upstream_model": "'m' || (g % 8)",
        "backend": "'b' || (g % 4)",
        "endpoint": "'chat/completions'",
        "status": "200",
        "outcome": "'ok'",
        "error_type": "CAST(NULL AS TEXT)",
        "input_tokens": "100 + g % 1000",
        "output_tokens": "50 + g % 300",
        "cost_usd": "'0.000001'",
        "cost_nusd": "1000 + g % 100000",
        "latency_s": "0.1",
        "ttft_s": "CAST(NULL AS DOUBLE PRECISION)",
        "priced": "1",
        "service_tier": "'standard'",
    }


def _day_rows(sel: str, day: int, lo: int, hi: int) -> str:
    """The SELECT of rows ``lo <= g < hi`` whose ``ts`` falls on day ``day`` (0-based) of the month."""
    return (
        f"SELECT {sel} FROM (SELECT c * {MONTH_S} + s AS g FROM generate_series({lo // MONTH_S}, "
        f"{(hi - 1) // MONTH_S}) c, generate_series({day * DAY_S}, {(day + 1) * DAY_S - 1}) s) q "
        f"WHERE g >= {lo} AND g < {hi}"
    )


def _load_day(dsn: str, day: int, lo: int, hi: int, keys: int = 50) -> None:
    """One day's rows into its partition, detached meanwhile so that its primary key is built once at the end
    (not row by row), and their rollup rows upserted as the shipper's statement does."""
    cols = _row_exprs(keys)
    sel = ", ".join(f"{cols[c]} AS {c}" for c in COLUMNS)
    rows = _day_rows(sel, day, lo, hi)
    start = MONTH0 + day * DAY_S
    part = pg_schema.partition_name(start)
    dims = ", ".join(pg_schema.ROLLUP_DIMS)
    agg = dict(AGGREGATES)
    sums = ", ".join(f"({agg[s]})::bigint" for s in pg_schema.ROLLUP_SUMS)
    upsert = ", ".join(f"{s} = spend_hourly.{s} + EXCLUDED.{s}" for s in pg_schema.ROLLUP_SUMS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        conn.execute(f"ALTER TABLE requests DETACH PARTITION {part}")
        pk = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (part,)
        ).fetchone()
        if pk is not None:
            conn.execute(f"ALTER TABLE {part} DROP CONSTRAINT {pk[0]}")
        conn.execute(f"INSERT INTO {part} ({', '.join(COLUMNS)}) {rows}")
        conn.execute(
            f"INSERT INTO spend_hourly (hour, {dims}, {', '.join(pg_schema.ROLLUP_SUMS)}) "
            f"SELECT {pg_schema.hour_of('ts')}, {dims}, {sums} FROM ({rows}) r "
            f"GROUP BY 1, {dims} ON CONFLICT ON CONSTRAINT spend_hourly_dims DO UPDATE SET {upsert}"
        )
        conn.execute(f"ALTER TABLE {part} ADD PRIMARY KEY (uid, ts)")
        conn.execute(
            f"ALTER TABLE requests ATTACH PARTITION {part} FOR VALUES FROM ({start}) TO ({start + DAY_S})"
        )


_BUDGET_FROM_ROLLUP = """
INSERT INTO budget_spend (scope, name, bucket, nusd, requests)
SELECT scope, name, bucket, SUM(cost_nusd)::bigint, SUM(requests)::bigint FROM (
  SELECT 'key' AS scope, key AS name, b.bucket, cost_nusd, requests FROM spend_hourly h,
    LATERAL (VALUES ('d:' || to_char(to_timestamp(h.hour) AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
                    ('m:' || to_char(to_timestamp(h.hour) AT TIME ZONE 'UTC', 'YYYY-MM'))) b(bucket)
    WHERE h.shadow = 0 AND h.key <> ''
  UNION ALL
  SELECT 'team', team, b.bucket, cost_nusd, requests FROM spend_hourly h,
    LATERAL (VALUES ('d:' || to_char(to_timestamp(h.hour) AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
                    ('m:' || to_char(to_timestamp(h.hour) AT TIME ZONE 'UTC', 'YYYY-MM'))) b(bucket)
    WHERE h.shadow = 0 AND h.team IS NOT NULL AND h.team <> ''
) s GROUP BY scope, name, bucket"""
"""Budget totals (per key/team and UTC day/month) from the hourly rollup: what the shipper's ``spend_deltas``
add up to for the same rows (hours never straddle a day)."""


_DAILY_FROM_HOURLY = (
    f"INSERT INTO spend_daily (day, {', '.join(pg_schema.ROLLUP_DIMS)}, {', '.join(pg_schema.ROLLUP_SUMS)}) "
    f"SELECT {pg_schema.day_of('hour')}, {', '.join(pg_schema.ROLLUP_DIMS)}, "
    f"{', '.join(f'SUM({s})::bigint' for s in pg_schema.ROLLUP_SUMS)} "
    f"FROM spend_hourly GROUP BY 1, {', '.join(pg_schema.ROLLUP_DIMS)}"
)
"""The daily rollup from the hourly one (what the shipper's daily upsert adds up to: hours never straddle days)."""


def load(dsn: str, lo: int, hi: int, jobs: int = 1, keys: int = 50) -> float:
    """Add rows ``lo <= g < hi`` (``_row_exprs``, November 2026) in bulk: server-side generate_series, one day
    partition at a time (``jobs`` at once), with the rollup rows and budget totals the shipper would have
    written for them (the daily rollup and the budget totals rebuilt from the hourly rollup); then ANALYZE."""
    t = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        pg_schema.ensure_partitions(conn, [MONTH0 + i * DAY_S for i in range(MONTH_S // DAY_S)])
    days = [d for d in range(MONTH_S // DAY_S) if _day_has_rows(d, lo, hi)]
    with ThreadPoolExecutor(jobs) as pool:
        for i, _ in enumerate(pool.map(lambda d: _load_day(dsn, d, lo, hi, keys), days)):
            print(f"loaded day {i + 1}/{len(days)} of rows {lo}..{hi}", flush=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("DELETE FROM budget_spend")
            conn.execute(_BUDGET_FROM_ROLLUP)
            conn.execute("DELETE FROM spend_daily")
            conn.execute(_DAILY_FROM_HOURLY)
        conn.execute("VACUUM ANALYZE spend_hourly")
        conn.execute("VACUUM ANALYZE spend_daily")
        conn.execute("VACUUM ANALYZE budget_spend")
        conn.execute("ANALYZE requests")
    return time.perf_counter() - t


def _day_has_rows(day: int, lo: int, hi: int) -> bool:
    first = lo - lo % MONTH_S + day * DAY_S
    if first + DAY_S <= lo:
        first += MONTH_S
    return max(first, lo) < hi


Query = tuple[tuple[str, ...], dict[str, str], float, float | None]
"""A ``/admin/spend`` call: group_by, filters, from, to (None: open-ended, as the console asks)."""
LAST_DAY = MONTH0 + MONTH_S - DAY_S
_MONTH_OPEN = (MONTH0, None)
_DAY_OPEN = (LAST_DAY, None)


def _q(group_by: tuple[str, ...], filters: dict[str, str], window: tuple[float, float | None]) -> Query:
    return (group_by, filters, window[0], window[1])


REPORTS: tuple[tuple[str, tuple[Query, ...]], ...] = (
    ("month_by_day_one_team", (((("day",), {"team": "t3"}, MONTH0, MONTH0 + MONTH_S)),)),
    ("month_by_model_all_teams", ((("model",), {}, MONTH0, MONTH0 + MONTH_S),)),
    ("month_by_day_and_key_one_team", ((("day", "key"), {"team": "t3"}, MONTH0, MONTH0 + MONTH_S),)),
    (
        "console_overview_page",
        (
            _q((), {}, _DAY_OPEN),
            _q((), {}, _MONTH_OPEN),
            *(_q((g,), {}, _MONTH_OPEN) for g in ("route", "task", "team", "requested_model", "backend")),
        ),
    ),
    (
        "console_spend_page",
        (
            _q(("route", "model"), {}, _MONTH_OPEN),
            *(_q((), f, w) for f in ({"team": "t3"}, {"key": "k7"}) for w in (_DAY_OPEN, _MONTH_OPEN)),
        ),
    ),
)
"""What the console and the spend API are asked over a month (data: November 2026; "today" its last day):
a team's daily chart, the model table, a team's keys by day, and the console's pages as the queries they make
in turn (``gateway/console/pages.py``: the overview's today/month totals and its five month breakdowns; the
spend page's route x model table and, per budget, today's and the month's spend for a team and a key)."""


def _timed(
    spend: Callable[..., list[dict[str, Any]]], queries: tuple[Query, ...], runs: int
) -> dict[str, Any]:
    times = []
    groups = 0
    for _ in range(runs):
        t = time.perf_counter()
        groups = sum(len(spend(list(g), since, until, f)) for g, f, since, until in queries)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 2),
        "p99_ms": round(times[min(len(times) - 1, round(len(times) * 0.99))], 2),
        "queries": len(queries),
        "groups": groups,
    }


def reports(dsn: str, local: SQLiteLedger, runs: int) -> dict[str, Any]:
    """Each of ``REPORTS`` ``runs`` times through ``PostgresLedger.spend`` (what ``/admin/spend`` calls)."""
    pg = PostgresLedger(local, dsn)
    out = {name: _timed(pg.spend, queries, runs) for name, queries in REPORTS}
    out["raw_rows_read"] = raw_rows_read(dsn)
    return out


def raw_rows_read(dsn: str) -> int:
    """Rows of ``requests`` any of ``REPORTS`` would read (0: every one is answered from the rollup)."""
    total = 0
    with psycopg.connect(dsn) as conn:
        for _, queries in REPORTS:
            for g, f, since, until in queries:
                sql, args = spend_sql(g, since, until, f)
                plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, args).fetchone()[0]
                total += _rows_from(plan[0]["Plan"], "requests")
    return total


def _rows_from(plan: dict[str, Any], prefix: str) -> int:
    own = plan.get("Actual Rows", 0) if str(plan.get("Relation Name", "")).startswith(prefix) else 0
    return int(own) + sum(_rows_from(p, prefix) for p in plan.get("Plans", []))


def sqlite_reports(path: Path, rows: int, runs: int = 5, keys: int = 50) -> dict[str, Any]:
    """The same rows in the embedded SQLite ledger (its schema and indexes, filled with a recursive CTE) and
    the same reports through ``query_spend``, for comparison at a size both apply to."""
    led = SQLiteLedger(str(path))
    led.start()
    asyncio.run(led.close())
    t = time.perf_counter()
    fill_sqlite(str(path), rows, keys)
    out: dict[str, Any] = {"rows": rows, "load_s": round(time.perf_counter() - t, 1)}
    t = time.perf_counter()
    conn = connect(str(path))
    while roll_up(conn)[0]:  # (what a gateway's writer does in the background after its start)
        pass
    conn.close()
    out["roll_up_s"] = round(time.perf_counter() - t, 1)
    out["bytes_per_million_rows"] = round(path.stat().st_size * 1_000_000 / rows)
    for name, queries in REPORTS:
        out[name] = _timed(lambda *a: query_spend(str(path), *a), queries, runs)
    return out


def fill_sqlite(path: str, rows: int, keys: int = 50) -> None:
    """Rows ``0 <= g < rows`` (``_row_exprs``) into the SQLite ledger at ``path`` (started once before)."""
    cols = _row_exprs(keys)
    conn = connect(path)
    conn.execute(
        f"WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < {rows - 1}) "
        f"INSERT INTO requests ({', '.join(COLUMNS)}) SELECT {', '.join(cols[c] for c in COLUMNS)} FROM s"
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def storage(dsn: str, rows: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with psycopg.connect(dsn) as conn:
        raw = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'requests'::regclass"
        ).fetchone()
        out["raw_bytes_per_million_rows"] = round(int(raw[0] if raw else 0) * 1_000_000 / rows)
        for table in ("spend_hourly", "spend_daily"):
            size = conn.execute(f"SELECT pg_total_relation_size('{table}'), COUNT(*) FROM {table}").fetchone()
            out[table] = {"bytes": int(size[0]), "rows": int(size[1])} if size else {}
    return out


SERVER_SETTINGS = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
}
"""The bench server's settings beyond tests/postgres_server.py's (modest for a database host; fsync stays off
there, which only the load and the ingest figures feel)."""


def loadavg() -> str:
    """The machine's 1/5/15-minute load (the figures are only as quiet as the machine was)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _ints(v: str) -> list[int]:
    return [int(x) for x in v.split(",") if x]


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
        "--sqlite-rows",
        default="",
        help="the same reports on the SQLite ledger at these row counts (comma list), in the same run",
    )
    ap.add_argument("--runs", type=int, default=50, help="runs of each report on PostgreSQL")
    ap.add_argument("--sqlite-runs", type=int, default=5, help="runs of each report on SQLite")
    ap.add_argument("--jobs", type=int, default=1, help="day partitions loaded at once")
    ap.add_argument(
        "--keys",
        type=int,
        default=50,
        help="distinct keys (row g's key is g mod KEYS): the rollup's rows per hour are lcm(KEYS, 40), at most 3600",
    )
    ap.add_argument("--json")
    a = ap.parse_args()
    srv = PostgresServer(settings=SERVER_SETTINGS).start()
    result: dict[str, Any] = {"server_settings": SERVER_SETTINGS, "keys": a.keys}
    work = Path(tempfile.mkdtemp(prefix="pgbench-"))
    try:
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ingest")
            conn.execute("CREATE DATABASE reports")
            result["server_version"] = conn.execute("SHOW server_version").fetchone()[0]
        base = srv.dsn.rsplit("/", 1)[0]
        for db in ("ingest", "reports"):
            with psycopg.connect(f"{base}/{db}", autocommit=True) as conn:
                pg_schema.migrate(conn)
        if a.writers:
            before = loadavg()
            result["ingest"] = [ingest(f"{base}/ingest", a.ship, int(w)) for w in a.writers.split(",")]
            result["ingest_loadavg"] = [before, loadavg()]
            print(json.dumps(result["ingest"]), flush=True)
        result["sqlite"] = []
        for n in _ints(a.sqlite_rows):
            before = loadavg()
            lite = sqlite_reports(work / f"ledger-{n}.sqlite3", n, a.sqlite_runs, a.keys)
            lite["loadavg"] = [before, loadavg()]
            (work / f"ledger-{n}.sqlite3").unlink()
            result["sqlite"].append(lite)
            print(json.dumps(lite), flush=True)
        local = SQLiteLedger(str(work / "unused.sqlite3"))
        result["sizes"] = []
        done = 0
        for n in _ints(a.rows):
            before = loadavg()
            size: dict[str, Any] = {
                "rows": n,
                "load_s": round(load(f"{base}/reports", done, n, a.jobs, a.keys), 1),
            }
            size["load_loadavg"] = [before, loadavg()]
            done = n
            before = loadavg()
            size["reports"] = reports(f"{base}/reports", local, a.runs)
            size["reports_loadavg"] = [before, loadavg()]
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
