"""The PostgreSQL ledger against a real server: reports from rollups equal the SQLite ledger's recount of the
same rows (whole and partial hours, every dimension), a re-shipped outbox counts nothing twice, budget totals,
partitions and retention."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from accounting import pg_schema
from accounting.ledger import SQLiteLedger
from accounting.ledger_reports import query_spend
from accounting.pg_ledger import PostgresLedger, spend_sql
from tests.ledger_rows import CASES, T0, records, write_local

pytestmark = pytest.mark.postgres


async def shipped(led: SQLiteLedger, dsn: str) -> PostgresLedger:
    pg = PostgresLedger(led, dsn, interval_s=0.05, batch_size=500)
    pg.start()
    assert await pg.caught_up(30)
    return pg


@pytest.mark.parametrize(("group_by", "since", "until", "filters"), CASES)
async def test_reports_from_rollups_equal_a_recount_of_the_rows(
    ledger_db: str,
    tmp_path: Path,
    group_by: tuple[str, ...],
    since: float,
    until: float,
    filters: dict[str, str],
) -> None:
    recs = records(3000)
    oracle = await write_local(tmp_path / "oracle.sqlite3", recs, rollups=False)  # (reports recount its rows)
    local = await write_local(tmp_path / "outbox.sqlite3", recs)
    pg = await shipped(local, ledger_db)
    try:
        got = pg.spend(group_by, since, until, filters)
        assert got == query_spend(oracle.path, group_by, since, until, filters)
        assert got  # the case selects something
    finally:
        await pg.close()
        await local.close()
        await oracle.close()


async def test_a_report_over_whole_days_reads_only_the_daily_rollup(ledger_db: str, tmp_path: Path) -> None:
    local = await write_local(tmp_path / "outbox.sqlite3", records(500))
    pg = await shipped(local, ledger_db)
    try:
        first = pg_schema.day_start(T0) + pg_schema.DAY_S
        sql, args = spend_sql(("day",), first, first + 2 * pg_schema.DAY_S, {"team": "search"})
        with psycopg.connect(ledger_db) as conn:
            plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql, args).fetchone()
        assert plan is not None
        assert _relations(plan[0][0]["Plan"]) == {"spend_daily"}
        assert pg.spend(("day",), first, first + 2 * pg_schema.DAY_S, {"team": "search"})
    finally:
        await pg.close()
        await local.close()


def _relations(plan: dict[str, Any]) -> set[str]:
    own = {plan["Relation Name"]} if "Relation Name" in plan else set()
    return own.union(*(_relations(p) for p in plan.get("Plans", [])))


async def test_a_reshipped_outbox_inserts_and_counts_nothing_twice(ledger_db: str, tmp_path: Path) -> None:
    recs = records(1200)
    local = await write_local(tmp_path / "outbox.sqlite3", recs)
    await local.close()
    shutil.copy(local.path, tmp_path / "copy.sqlite3")  # the outbox as it was before its position moved
    first = SQLiteLedger(local.path)
    first.start()
    pg = await shipped(first, ledger_db)
    before = pg.spend(("team", "day"), None, None)
    budgets_before = _budget_rows(ledger_db)
    await pg.close()
    await first.close()
    again = SQLiteLedger(str(tmp_path / "copy.sqlite3"))
    again.start()
    pg2 = await shipped(again, ledger_db)
    try:
        assert pg2.shipped == 0
        assert pg2.spend(("team", "day"), None, None) == before
        assert _budget_rows(ledger_db) == budgets_before
        with psycopg.connect(ledger_db) as conn:
            assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT uid) FROM requests").fetchone() == (
                1200,
                1200,
            )
    finally:
        await pg2.close()
        await again.close()


def _budget_rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM budget_spend ORDER BY 1, 2, 3").fetchall()


async def test_budget_totals_count_non_shadow_spend_per_key_and_team(ledger_db: str, tmp_path: Path) -> None:
    recs = records(800)
    local = await write_local(tmp_path / "outbox.sqlite3", recs)
    oracle = await write_local(tmp_path / "oracle.sqlite3", recs)
    pg = await shipped(local, ledger_db)
    try:
        day = "d:" + time.strftime("%Y-%m-%d", time.gmtime(T0 + 86400))
        month = "m:" + time.strftime("%Y-%m", time.gmtime(T0))
        keys = [("team", "search", day), ("key", "app", month), ("team", "nobody", day)]
        got = pg.budget_spend(keys)
        assert got == oracle.budget_spend(keys)
        assert got[("team", "search", day)] > 0 and got[("team", "nobody", day)] == 0
    finally:
        await pg.close()
        await local.close()
        await oracle.close()


async def test_shipped_rows_leave_the_local_outbox(ledger_db: str, tmp_path: Path) -> None:
    local = await write_local(tmp_path / "outbox.sqlite3", records(700))
    pg = await shipped(local, ledger_db)
    try:
        assert pg.shipped == 700 and pg.backlog == 0
        conn = local_conn(local.path)
        assert (
            conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1
        )  # the newest row keeps ids rising
    finally:
        await pg.close()
        await local.close()


def local_conn(path: str) -> object:
    import sqlite3

    return sqlite3.connect(path)


def test_partitions_are_created_ahead_and_dropped_by_retention(ledger_db: str) -> None:
    now = time.time()
    today = pg_schema.day_start(now)
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        made = pg_schema.ensure_partitions(conn, [today + i * pg_schema.DAY_S for i in range(-10, 4)])
        assert len(made) == 14
        assert pg_schema.ensure_partitions(conn, [today]) == []
        dropped = pg_schema.drop_expired(conn, 7, now)
        assert dropped == [pg_schema.partition_name(today + i * pg_schema.DAY_S) for i in range(-10, -7)]
        left = [d for _, d in pg_schema.existing_partitions(conn)]
        assert left == [today + i * pg_schema.DAY_S for i in range(-7, 4)]
