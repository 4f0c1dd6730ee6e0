"""The PostgreSQL ledger bench's bulk loader (tests/bench/pg_ledger_bench.py) writes what the shipper writes:
the same raw rows, hourly rollup rows and budget totals for the same generated rows, so report latency measured
on bulk-loaded data is the latency of a database the fleet filled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from accounting import pg_schema
from accounting.ledger import COLUMNS, SQLiteLedger
from accounting.pg_ledger import PostgresLedger
from tests.bench import pg_ledger_bench as bench
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

ROWS = 90_000  # past the first day (86,400 rows a day), loaded in two steps


def _contents(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    dims = ", ".join(pg_schema.ROLLUP_DIMS)
    with psycopg.connect(dsn) as conn:
        return {
            "requests": conn.execute(f"SELECT {', '.join(COLUMNS)} FROM requests ORDER BY uid").fetchall(),
            "spend_hourly": conn.execute(
                f"SELECT hour, {dims}, {', '.join(pg_schema.ROLLUP_SUMS)} FROM spend_hourly "
                f"ORDER BY hour, {dims}"
            ).fetchall(),
            "spend_daily": conn.execute(
                f"SELECT day, {dims}, {', '.join(pg_schema.ROLLUP_SUMS)} FROM spend_daily ORDER BY day, {dims}"
            ).fetchall(),
            "budget_spend": conn.execute(
                "SELECT * FROM budget_spend ORDER BY scope, name, bucket"
            ).fetchall(),
        }


async def test_the_bench_bulk_loader_writes_the_rows_rollups_and_budget_totals_the_shipper_writes(
    ledger_db: str, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    local = SQLiteLedger(str(tmp_path / "outbox.sqlite3"))
    local.start()
    bench.fill_sqlite(local.path, ROWS)
    pg = PostgresLedger(local, ledger_db, interval_s=0.05, batch_size=10_000)
    pg.start()
    assert await pg.caught_up(120)
    await pg.close()
    await local.close()

    loaded = postgres_server.dsn.rsplit("/", 1)[0] + "/bulk_loaded"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bulk_loaded")
    with psycopg.connect(loaded, autocommit=True) as conn:
        pg_schema.migrate(conn)
    bench.load(loaded, 0, 50_000)
    bench.load(loaded, 50_000, ROWS, jobs=2)

    want, got = _contents(ledger_db), _contents(loaded)
    assert len(got["requests"]) == ROWS
    for table in want:
        assert got[table] == want[table], table
