"""The SQLite ledger's hourly and daily rollups (``spend_hourly``, ``spend_daily``) and the report query that reads
them: per UTC hour and day and every ``spend_report.ROLLUP_DIMS`` value, the ``ROLLUP_SUMS`` of the ledger's rows,
as the PostgreSQL ledger keeps them.

The ledger's writer (``accounting.ledger``) adds the rows it wrote every ``ROLLUP_INTERVAL_S`` or ``ROLLUP_ROWS``
rows (``roll_up``), in one transaction that also moves a watermark (``meta.rolled_up``: the highest row id the
rollups hold; ids only rise). A report reads the rollups for the whole days and hours of its window and raw rows
for the partial hours at its ends and for the rows past the watermark, in the same statement, so it is exact at
any moment; workers and replicas sharing the file roll up without counting a row twice.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any

from accounting.spend_report import (
    AGGREGATES,
    DAY_S,
    HOUR_S,
    ROLLUP_DIMS,
    ROLLUP_SUMS,
    SOURCES,
    TIME_DIMS,
    Dialect,
    spend_select,
)

_AGG = dict(AGGREGATES)
_ROLLUPS = (SOURCES["hourly"], SOURCES["daily"])
"""The rollup tables: name and period column."""
ROLLUP_INTERVAL_S = 10.0
"""How often the writer adds the rows written since to the rollups (or sooner: ``ROLLUP_ROWS``)."""
ROLLUP_ROWS = 50_000
"""Rows not yet rolled up that make the writer roll up before ``ROLLUP_INTERVAL_S`` (a report reads them raw)."""
ROLLUP_CHUNK = 100_000
"""The most rows one rollup transaction takes (a ledger written before the rollups is rolled up in chunks, in
the background, 1-2 s each at worst: reports stay right meanwhile, reading the rest raw)."""
_WATERMARK = "rolled_up"
"""``meta`` key: the highest row id the rollups hold (rows get rising ids; the rest a report reads raw)."""


def _rollup_table(table: str, period: str) -> str:
    """A rollup's schema: per period start and dimension values (``k``: them as one text, ``_rollup_key``, since
    SQLite's unique constraints treat NULLs as distinct and a row's team and task may be NULL), the sums. Keyed
    by period first, so a window's rows are one range and live traffic adds to the end. The dimensions are
    declared without a type: they keep the values the ledger's columns gave them."""
    dims = ", ".join(ROLLUP_DIMS)
    sums = ", ".join(f"{s} INTEGER NOT NULL DEFAULT 0" for s in ROLLUP_SUMS)
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ({period} INTEGER NOT NULL, k TEXT NOT NULL, {dims}, {sums}, "
        f"PRIMARY KEY ({period}, k)) WITHOUT ROWID"
    )


def _rollup_key() -> str:
    """The SQL of a rollup row's ``k`` from its dimension columns (NULL as ``char(1)``)."""
    return " || char(31) || ".join(f"IFNULL(CAST({d} AS TEXT), char(1))" for d in ROLLUP_DIMS)


def _chunk_sql() -> list[str]:
    """A rollup pass: the rows with ``? < id <= ?`` summed per hour and dimension values, with the report's own
    sums (``spend_report.AGGREGATES``), into a temporary table (one pass over the rows for both rollups), added
    from there to the hourly rollup and, per day, to the daily one."""
    dims = ", ".join(ROLLUP_DIMS)
    cols = ", ".join(ROLLUP_SUMS)

    def add(table: str, period: str, select: str) -> str:
        return (
            f"INSERT INTO {table} ({period}, k, {dims}, {cols}) {select} "
            f"ON CONFLICT ({period}, k) DO UPDATE SET "
            + ", ".join(f"{s} = {s} + excluded.{s}" for s in ROLLUP_SUMS)
        )

    return [
        "DELETE FROM temp.rollup_chunk",
        f"INSERT INTO temp.rollup_chunk SELECT hour, {_rollup_key()}, {dims}, {cols} FROM ("
        f"SELECT CAST(ts / {HOUR_S} AS INTEGER) * {HOUR_S} AS hour, {dims}, "
        + ", ".join(f"{_AGG[s]} AS {s}" for s in ROLLUP_SUMS)
        + f" FROM requests WHERE id > ? AND id <= ? GROUP BY 1, {dims})",
        add("spend_hourly", "hour", f"SELECT hour, k, {dims}, {cols} FROM temp.rollup_chunk WHERE true"),
        add(
            "spend_daily",
            "day",
            f"SELECT CAST(hour / {DAY_S} AS INTEGER) * {DAY_S}, k, {dims}, "
            + ", ".join(f"SUM({s})" for s in ROLLUP_SUMS)
            + " FROM temp.rollup_chunk WHERE true GROUP BY 1, 2",
        ),
        "DELETE FROM temp.rollup_chunk",
    ]


_CHUNK_SQL = _chunk_sql()


def add_rollups(conn: sqlite3.Connection) -> None:
    """Create the rollups (empty, holding no row yet: ``roll_up`` fills them) unless the ledger has them."""
    if has_rollups(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, period in _ROLLUPS:
            conn.execute(_rollup_table(table, period))
        conn.execute(f"INSERT OR IGNORE INTO meta (k, v) VALUES ('{_WATERMARK}', '0')")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def roll_up(conn: sqlite3.Connection, limit: int = ROLLUP_CHUNK) -> tuple[int, int]:
    """Add up to ``limit`` rows the rollups do not hold yet to them, and move the watermark past them, in one
    transaction (replicas and workers sharing the file may race): how many rows were added, and how many are
    left (an upper bound: ids may have gaps)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        start = int(conn.execute(f"SELECT v FROM meta WHERE k = '{_WATERMARK}'").fetchone()[0])
        last = int(conn.execute("SELECT IFNULL(MAX(id), 0) FROM requests").fetchone()[0])
        top = min(last, start + limit)
        if top > start:
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS rollup_chunk (hour INTEGER, k TEXT, {', '.join(ROLLUP_DIMS)}, "
                f"{', '.join(ROLLUP_SUMS)})"
            )
            for sql in _CHUNK_SQL:
                conn.execute(sql, (start, top) if "?" in sql else ())
            conn.execute(f"UPDATE meta SET v = ? WHERE k = '{_WATERMARK}'", (str(top),))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return max(0, top - start), max(0, last - max(top, start))


def has_rollups(conn: sqlite3.Connection) -> bool:
    """Whether the ledger has rollups (``add_rollups``)."""
    try:
        return conn.execute(f"SELECT 1 FROM meta WHERE k = '{_WATERMARK}'").fetchone() is not None
    except sqlite3.OperationalError:  # a ledger from before ``meta``
        return False


_UNROLLED = (
    f"id > (SELECT CAST(v AS INTEGER) FROM meta WHERE k = '{_WATERMARK}') AND {{t}} >= ? AND {{t}} < ?"
)
_BY_ID = Dialect("?", "{}", TIME_DIMS, _UNROLLED.format(t="+ts"))
"""Rows not rolled up yet read by id (``+ts``: not by the time index, which would read the window's every row):
the newest rows only, a bounded number while the writer keeps up."""
_BY_TIME = Dialect("?", "{}", TIME_DIMS, _UNROLLED.format(t="ts"))
"""Rows not rolled up yet read by the time index: while a ledger written before the rollups is being rolled up,
most of its rows are not, and a report reads its window's."""


def unrolled_rows(conn: sqlite3.Connection) -> int:
    """How many rows the rollups do not hold yet (an upper bound: ids may have gaps)."""
    last = conn.execute("SELECT IFNULL(MAX(id), 0) FROM requests").fetchone()[0]
    mark = conn.execute(f"SELECT CAST(v AS INTEGER) FROM meta WHERE k = '{_WATERMARK}'").fetchone()
    return max(0, int(last) - int(mark[0] if mark else 0))


def spend_sql(
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
    filters: dict[str, str] | None = None,
    unrolled: int = 0,
) -> tuple[str, list[Any]]:
    """The report's SQL on a ledger with rollups: the daily rollup for the whole days of ``[since, until)``, the
    hourly one for the whole hours around them, raw rows for the partial hours at its ends and for the rows not
    rolled up yet (``unrolled`` of them: read by id when they are few, by time when they are many)
    (``spend_report.spend_select``)."""
    return spend_select(group_by, since, until, filters, _BY_ID if unrolled <= ROLLUP_CHUNK else _BY_TIME)
