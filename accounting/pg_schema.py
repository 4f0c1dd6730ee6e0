"""The PostgreSQL ledger's schema: versioned migrations, partitions and retention.

Tables (see docs/accounting.md, "Fleets: the PostgreSQL ledger"):

* ``requests``: one row per request, the ledger's own columns (``accounting.ledger.COLUMNS``, their types
  derived from the SQLite schema there), range-partitioned by ``ts`` into one partition per UTC day
  (``requests_YYYYMMDD``), primary key ``(uid, ts)`` so a retried batch inserts nothing twice.
* ``spend_hourly``: the rollup reports read: per UTC hour and every report dimension
  (``accounting.spend_report.ROLLUP_DIMS``, shared with the SQLite ledger's rollups), the sums of
  ``accounting.spend_report.AGGREGATES``; maintained in the transaction that inserts the rows (only rows actually
  inserted count).
* ``spend_daily`` (version 3): the same per UTC day, maintained alike; reports read it for the whole days of
  their range (up to 24 times fewer rows than the hourly rollup for a month).
* ``budget_spend``: per key/team and UTC day/month bucket, the non-shadow spend budgets re-seed from.
* ``schema_migrations``: the versions applied.

``migrate`` applies the versions not yet applied (under an advisory lock, so replicas and ``pointsman db
migrate`` may race), then adds any ledger column the database lacks (columns the ledger gained later, with
their defaults). ``state`` says what is missing, for the startup check. psycopg is imported by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from accounting.ledger import COLUMNS, V1_COLUMNS, column_types
from accounting.spend_report import AGGREGATES
from accounting.spend_report import DAY_S as DAY_S
from accounting.spend_report import HOUR_S as HOUR_S
from accounting.spend_report import ROLLUP_DIMS as ROLLUP_DIMS
from accounting.spend_report import ROLLUP_SUMS as ROLLUP_SUMS

_LOCK = 0x706F696E  # pg_advisory_xact_lock key for schema changes ("poin")
_PG_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "TEXT": "TEXT"}


def column_sql(name: str) -> str:
    sqlite_type, not_null, default = column_types()[name]
    sql = f"{name} {_PG_TYPES[sqlite_type]}"
    if not_null:
        sql += " NOT NULL"
    if default is not None:
        sql += f" DEFAULT {default}"
    return sql


def _v1(cur: Any) -> None:
    cols = ",\n    ".join(column_sql(c) for c in V1_COLUMNS)
    cur.execute(f"CREATE TABLE requests (\n    {cols},\n    PRIMARY KEY (uid, ts)\n) PARTITION BY RANGE (ts)")


def _rollup_table(cur: Any, table: str, period: str) -> None:
    """A rollup: per ``period`` start (unix seconds) and every ``ROLLUP_DIMS`` value, the ``ROLLUP_SUMS``."""
    dims = ", ".join(ROLLUP_DIMS)
    cur.execute(
        f"CREATE TABLE {table} ({period} BIGINT NOT NULL, "
        + ", ".join(column_sql(d).replace(" NOT NULL", "") for d in ROLLUP_DIMS)
        + ", "
        + ", ".join(f"{s} BIGINT NOT NULL DEFAULT 0" for s in ROLLUP_SUMS)
        + f", CONSTRAINT {table}_dims UNIQUE NULLS NOT DISTINCT ({period}, {dims}))"
    )
    cur.execute(f"CREATE INDEX {table}_team ON {table} (team, {period})")
    cur.execute(f"CREATE INDEX {table}_key ON {table} (key, {period})")


def _v2(cur: Any) -> None:
    aggs = dict(AGGREGATES)
    dims = ", ".join(ROLLUP_DIMS)
    _rollup_table(cur, "spend_hourly", "hour")
    cur.execute(
        "CREATE TABLE budget_spend (scope TEXT NOT NULL, name TEXT NOT NULL, bucket TEXT NOT NULL, "
        "nusd BIGINT NOT NULL, requests BIGINT NOT NULL, PRIMARY KEY (scope, name, bucket))"
    )
    # rows written under version 1: counted once, here
    cur.execute(
        f"INSERT INTO spend_hourly (hour, {dims}, {', '.join(ROLLUP_SUMS)}) "
        f"SELECT {hour_of('ts')}, {dims}, {', '.join(f'({aggs[s]})::bigint' for s in ROLLUP_SUMS)} "
        f"FROM requests GROUP BY 1, {dims}"
    )
    cur.execute(f"INSERT INTO budget_spend {BUDGET_SELECT.format(source='requests')}")


def _v3(cur: Any) -> None:
    dims = ", ".join(ROLLUP_DIMS)
    _rollup_table(cur, "spend_daily", "day")
    # what the hourly rollup holds so far, once: hours never straddle a UTC day
    cur.execute(
        f"INSERT INTO spend_daily (day, {dims}, {', '.join(ROLLUP_SUMS)}) "
        f"SELECT {day_of('hour')}, {dims}, {', '.join(f'SUM({s})::bigint' for s in ROLLUP_SUMS)} "
        f"FROM spend_hourly GROUP BY 1, {dims}"
    )


MIGRATIONS: tuple[tuple[int, str, Callable[[Any], None]], ...] = (
    (1, "requests, partitioned by day", _v1),
    (2, "hourly spend rollup and budget totals", _v2),
    (3, "daily spend rollup", _v3),
)
LATEST = MIGRATIONS[-1][0]


def hour_of(ts: str) -> str:
    return f"(floor({ts} / {HOUR_S}) * {HOUR_S})::bigint"


def day_of(ts: str) -> str:
    return f"(floor({ts} / {DAY_S}) * {DAY_S})::bigint"


BUDGET_SELECT = """
SELECT scope, name, bucket, SUM(cost_nusd)::bigint, COUNT(*)::bigint FROM (
  SELECT 'key' AS scope, key AS name, b.bucket, cost_nusd FROM {source} r,
    LATERAL (VALUES ('d:' || to_char(to_timestamp(r.ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
                    ('m:' || to_char(to_timestamp(r.ts) AT TIME ZONE 'UTC', 'YYYY-MM'))) b(bucket)
    WHERE r.shadow = 0 AND r.key <> ''
  UNION ALL
  SELECT 'team', team, b.bucket, cost_nusd FROM {source} r,
    LATERAL (VALUES ('d:' || to_char(to_timestamp(r.ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
                    ('m:' || to_char(to_timestamp(r.ts) AT TIME ZONE 'UTC', 'YYYY-MM'))) b(bucket)
    WHERE r.shadow = 0 AND r.team IS NOT NULL AND r.team <> ''
) s GROUP BY scope, name, bucket"""
"""Per key/team and day/month bucket totals of non-shadow rows in ``{source}`` (as ``ledger.spend_deltas``)."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    version: int
    missing_columns: tuple[str, ...]

    @property
    def current(self) -> bool:
        return self.version == LATEST and not self.missing_columns

    def describe(self) -> str:
        if self.current:
            return f"schema version {self.version} (current)"
        parts = [f"schema version {self.version} of {LATEST}"]
        if self.missing_columns:
            parts.append("missing ledger columns: " + ", ".join(self.missing_columns))
        return "; ".join(parts) + ": run `pointsman db migrate`"


def state(conn: Any) -> SchemaState:
    cur = conn.cursor()
    cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return SchemaState(0, tuple(COLUMNS))
    cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    version = int(cur.fetchone()[0])
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'requests'"
    )
    have = {r[0] for r in cur.fetchall()}
    return SchemaState(version, tuple(c for c in COLUMNS if c not in have))


def migrate(conn: Any, upto: int = LATEST) -> list[str]:
    """Apply what is missing up to version ``upto`` (one transaction); returns what was done."""
    done: list[str] = []
    with conn.transaction():
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        applied = {r[0] for r in cur.fetchall()}
        for version, name, step in MIGRATIONS:
            if version in applied or version > upto:
                continue
            if version > 1:
                done += _add_columns(conn)  # later steps read every ledger column
            step(cur)
            cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            done.append(f"{version}: {name}")
        if upto > 1:
            done += _add_columns(conn)
    return done


def _add_columns(conn: Any) -> list[str]:
    """Ledger columns the database lacks (added to the ledger after version 1), with their defaults."""
    added = []
    for c in state(conn).missing_columns:
        conn.execute(f"ALTER TABLE requests ADD COLUMN {column_sql(c)}")
        added.append(f"column {c}")
    return added


def partition_name(day_start: int) -> str:
    return "requests_" + time.strftime("%Y%m%d", time.gmtime(day_start))


def day_start(ts: float) -> int:
    return int(ts // DAY_S) * DAY_S


def ensure_partitions(conn: Any, days: Iterable[int]) -> list[str]:
    """Create the daily partitions (day starts, unix seconds) that do not exist yet; returns those created."""
    made: list[str] = []
    cur = conn.cursor()
    for d in sorted(set(days)):
        name = partition_name(d)
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        if cur.fetchone()[0]:
            continue
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF requests FOR VALUES FROM ({d}) TO ({d + DAY_S})"
        )
        made.append(name)
    return made


def existing_partitions(conn: Any) -> list[tuple[str, int]]:
    """(name, day start) of every daily partition, oldest first."""
    cur = conn.cursor()
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'requests'::regclass"
    )
    out = []
    for (name,) in cur.fetchall():
        try:
            t = time.strptime(name.removeprefix("requests_"), "%Y%m%d")
        except ValueError:
            continue
        out.append((name, int(time.mktime(t) - time.timezone)))
    return sorted(out, key=lambda p: p[1])


def drop_expired(conn: Any, retention_days: int, now: float) -> list[str]:
    """Drop the daily partitions wholly older than ``retention_days`` (rollups and budget totals stay)."""
    cutoff = day_start(now) - retention_days * DAY_S
    dropped = []
    cur = conn.cursor()
    for name, start in existing_partitions(conn):
        if start + DAY_S <= cutoff:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    return dropped
