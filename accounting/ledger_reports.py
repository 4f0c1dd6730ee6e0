"""Spend reports over a SQLite ledger file (``/admin/spend`` through the accountant, ``pointsman spend
--ledger``): from its rollups where it has them (``accounting.ledger_rollups``), else from its rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accounting.ledger import ADDED_COLUMNS, connect
from accounting.ledger_rollups import has_rollups, spend_sql, unrolled_rows
from accounting.spend_report import AGGREGATES, DIMENSIONS, check_query, grouped_select, spend_items


def _sql_value(v: Any) -> str:
    """A column default as an SQL literal (numbers and NULL; text defaults quoted)."""
    if v is None:
        return "NULL"
    if isinstance(v, int | float):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def query_spend(
    path: str,
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
    filters: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Totals grouped by ``group_by`` (names from ``DIMENSIONS``) over ``since <= ts < until``: from the rollups
    where the ledger has them (``spend_report.spend_select``), else from its rows."""
    check_query(group_by, filters)
    if not Path(path).exists():
        return []
    conn = connect(path, readonly=True)
    try:
        if has_rollups(conn):
            sql, args = spend_sql(group_by, since, until, filters, unrolled_rows(conn))
        else:
            sql, args = _raw_spend_sql(conn, group_by, since, until, filters)
        rows = conn.execute(sql, args).fetchall()
    finally:
        conn.close()
    return spend_items(group_by, rows)


def _raw_spend_sql(
    conn: sqlite3.Connection,
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
    filters: dict[str, str] | None,
) -> tuple[str, list[Any]]:
    """The report's query over raw rows, for a ledger no gateway has rolled up yet: one an older pointsman
    wrote, read before a gateway migrated it (``pointsman spend --ledger``), which may also lack the newer
    columns (they read as their default, as ``migrate`` would fill them)."""
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if until is not None:
        where.append("ts < ?")
        args.append(until)
    for k, v in (filters or {}).items():
        where.append(f"{DIMENSIONS[k]} = ?")
        args.append(v)
    missing = set(ADDED_COLUMNS) - {r[1] for r in conn.execute("PRAGMA table_info(requests)")}
    dims = [
        _sql_value(ADDED_COLUMNS[DIMENSIONS[g]][1]) if DIMENSIONS[g] in missing else DIMENSIONS[g]
        for g in group_by
    ]
    aggs = [_sql_value(ADDED_COLUMNS[name][1]) if name in missing else agg for name, agg in AGGREGATES]
    sql = grouped_select("requests", dims, aggs, where)
    if group_by:
        sql += " ORDER BY " + f"SUM(cost_nusd) DESC, {', '.join(f'g{i}' for i in range(len(group_by)))}"
    return sql, args
