"""The ledger in PostgreSQL, for fleets: every replica ships its own rows; reports read daily and hourly rollups.

The replica's SQLite ledger (``SQLiteLedger``) stays what the request path writes to (same batching, same
loss bound on kill -9). It is also the outbox: a shipper thread reads the rows after the position it last
shipped (``meta.pg_position``), inserts them into PostgreSQL in batches (COPY into a session temp table, then
``INSERT ... ON CONFLICT DO NOTHING RETURNING uid``: a retried batch inserts nothing twice), maintains the
hourly and daily rollups and the budget totals in the same statement/transaction from the rows actually
inserted, then moves its position and deletes the shipped rows from the local file. While PostgreSQL is unreachable rows
wait in the local file, up to ``outbox_max_rows``; beyond that the ledger refuses new rows (counted in
``dropped``, logged) until the database is back.

Reports (``spend``) read ``spend_daily`` for the whole days of the range, ``spend_hourly`` for the whole hours
around them and raw rows only for the partial hours at its ends; budget totals (``budget_spend``) read
``budget_spend``. psycopg is imported here, and this module only when ``accounting.ledger.backend`` is
``postgres``.

Every database call (a shipped batch with its connection set-up, maintenance, a budget lookup, a report) runs
under ``call_timeout_s``: the server's ``statement_timeout``, and a client-side deadline that shuts the
connection's socket down when the server does not answer at all (a frozen host or process: its kernel still
acknowledges, so TCP would wait for many minutes). The call then fails like any lost connection: shipping
retries with backoff, the outbox bound and ``/admin/ledger`` see the database as unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg

from accounting import pg_schema
from accounting.config import dsn_target
from accounting.errors import LedgerUnavailable
from accounting.ledger import COLUMNS, SQLiteLedger, connect, run_callbacks, spend_deltas
from accounting.metrics import Metrics
from accounting.spend_report import AGGREGATES, Dialect, spend_items, spend_select

log = logging.getLogger("pointsman.ledger")

_COLS = ", ".join(COLUMNS)
_DIMS = ", ".join(pg_schema.ROLLUP_DIMS)
_AGG = dict(AGGREGATES)


def _roll(table: str, period: str, start: str) -> str:
    """The upsert adding the inserted rows (``ins``) to rollup ``table`` per ``period`` (``start`` of ``ts``)."""
    sums = pg_schema.ROLLUP_SUMS
    return (
        f"INSERT INTO {table} ({period}, {_DIMS}, {', '.join(sums)}) "
        f"SELECT {start}, {_DIMS}, {', '.join(f'({_AGG[s]})::bigint' for s in sums)} FROM ins GROUP BY 1, {_DIMS} "
        f"ON CONFLICT ON CONSTRAINT {table}_dims DO UPDATE SET "
        + ", ".join(f"{s} = {table}.{s} + EXCLUDED.{s}" for s in sums)
    )


_SHIP = f"""
WITH ins AS (
  INSERT INTO requests ({_COLS}) SELECT {_COLS} FROM ship_batch ON CONFLICT DO NOTHING RETURNING *
), hourly AS ({_roll("spend_hourly", "hour", pg_schema.hour_of("ts"))}
), daily AS ({_roll("spend_daily", "day", pg_schema.day_of("ts"))}
)
SELECT uid FROM ins
"""
_UPSERT_BUDGET = (
    "INSERT INTO budget_spend (scope, name, bucket, nusd, requests) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (scope, name, bucket) DO UPDATE SET nusd = budget_spend.nusd + EXCLUDED.nusd, "
    "requests = budget_spend.requests + EXCLUDED.requests"
)
_DIALECT = Dialect(
    "%s",
    "({})::bigint",
    {
        "day": "to_char(to_timestamp({t}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        "month": "to_char(to_timestamp({t}) AT TIME ZONE 'UTC', 'YYYY-MM')",
        "hour": "to_char(to_timestamp({t}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
    },
)
_POSITION = "pg_position"


class SchemaBehind(RuntimeError):
    """The database's schema is older than this version's (``pointsman db migrate`` brings it up)."""


def check_schema(dsn: str, timeout_s: float = 5.0) -> pg_schema.SchemaState:
    """The database's schema state (raises ``psycopg.OperationalError`` when it cannot be reached)."""
    with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))) as conn:
        return pg_schema.state(conn)


def _abandon(conn: psycopg.Connection[Any], fired: threading.Event) -> None:
    """Shut ``conn``'s socket down from another thread: whatever waits on it fails at once (the connection is
    then closed by its owner)."""
    fired.set()
    with contextlib.suppress(OSError, psycopg.Error):
        dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


@contextlib.contextmanager
def deadline(conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
    """Fail the block with ``psycopg.OperationalError`` if ``conn`` has not answered within ``seconds``."""
    fired = threading.Event()
    timer = threading.Timer(seconds, _abandon, (conn, fired))
    timer.daemon = True
    timer.start()
    try:
        yield
    except psycopg.Error as exc:
        if fired.is_set():
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer within {seconds:g} s (ledger.call_timeout_s); connection closed"
            ) from exc
        raise
    finally:
        timer.cancel()


class PostgresLedger:
    """Ships the local ledger's rows to PostgreSQL and answers reports from it (see the module docstring)."""

    def __init__(
        self,
        local: SQLiteLedger,
        dsn: str,
        interval_s: float = 0.5,
        batch_size: int = 5000,
        outbox_max_rows: int = 5_000_000,
        retention_days: int | None = None,
        partitions_ahead_days: int = 3,
        metrics: Metrics | None = None,
        call_timeout_s: float = 30.0,
    ) -> None:
        self.local = local
        self.dsn = dsn
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.outbox_max_rows = outbox_max_rows
        self.retention_days = retention_days
        self.partitions_ahead_days = partitions_ahead_days
        self.metrics = metrics
        self.call_timeout_s = call_timeout_s
        self.shipped = 0
        """Rows inserted into PostgreSQL by this process."""
        self.failures = 0
        """Shipping passes that failed (each retry counts)."""
        self.backlog = 0
        """Rows in the local outbox not shipped yet (as of the last pass)."""
        self.position = 0
        self.last_error: str | None = None
        self.on_ship: list[
            Callable[[list[tuple[Any, ...]], dict[tuple[str, str, str], list[int]]], None]
        ] = []
        """Callbacks ``f(rows, deltas)`` (shipper thread) after rows were inserted (only rows new to the database;
        ``deltas``: their spend per budget bucket)."""
        self._conn: psycopg.Connection[Any] | None = None
        self._outbox: Any = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = False
        self._days: set[int] = set()
        self._maintained = 0.0
        self._query_lock = threading.Lock()
        self._query_conn: psycopg.Connection[Any] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """After ``local.start()``: the outbox position, then the shipper thread."""
        self._outbox = connect(self.local.path)
        if self.metrics is not None:
            self.metrics.ledger_outbox_max_rows.set(self.outbox_max_rows)
        row = self._outbox.execute("SELECT v FROM meta WHERE k = ?", (_POSITION,)).fetchone()
        self.position = int(row[0]) if row else 0
        self._thread = threading.Thread(target=self._run, name="pointsman-ledger-pg", daemon=True)
        self._thread.start()

    async def close(self, wait_s: float = 10.0) -> None:
        """Ship what the local ledger holds (for at most ``wait_s``, unless the database is unreachable), then
        stop; the rest waits in the file."""
        if self.last_error is None:
            await self.caught_up(wait_s)
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
        for c in (self._conn, self._query_conn):
            if c is not None:
                with contextlib.suppress(psycopg.Error):
                    c.close()
        if self._outbox is not None:
            self._outbox.close()
        if self.backlog:
            log.warning(
                "ledger: %d rows not shipped to PostgreSQL yet; they wait in %s",
                self.backlog,
                self.local.path,
            )

    async def caught_up(self, wait_s: float = 10.0) -> bool:
        """Wait (at most ``wait_s``) until every row the local ledger has committed so far is shipped."""
        await self.local.flushed(wait_s)
        target = await asyncio.to_thread(self._local_max)
        deadline = time.monotonic() + wait_s
        while self.position < target and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.01)
        return self.position >= target

    def _local_max(self) -> int:
        conn = connect(self.local.path)
        try:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM requests").fetchone()[0])
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        """The shipper's state for ``/admin/ledger`` (the database without credentials)."""
        return {
            "database": dsn_target(self.dsn),
            "reachable": self.last_error is None,
            "last_error": self.last_error,
            "outbox": {
                "path": self.local.path,
                "rows": self.backlog,
                "max_rows": self.outbox_max_rows,
                "full": self.local.outbox_full,
            },
            "shipped_rows": self.shipped,
            "ship_failures": self.failures,
        }

    # -- shipper thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.interval_s
        while not self._stop:
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                while self._ship_batch():
                    pass
                self._maintain()
                backoff = self.interval_s
                if self.last_error is not None:
                    log.warning("ledger: PostgreSQL reachable again; %d rows waiting to ship", self.backlog)
                self.last_error = None
            except (psycopg.Error, SchemaBehind) as exc:
                if self.last_error != str(exc):
                    log.error("ledger: PostgreSQL write failed (rows wait in the local outbox): %s", exc)
                self.failures += 1
                if self.metrics is not None:
                    self.metrics.ledger_ship_failures.inc()
                self.last_error = str(exc)  # last: a reader that sees it sees the failure counted
                self._drop_conn()
                backoff = min(max(backoff * 2, 0.2), 5.0)
            self._refresh_backlog()

    def _drop_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        self._days.clear()

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            try:
                with deadline(conn, self.call_timeout_s):
                    st = pg_schema.state(conn)
                    if not st.current:
                        raise SchemaBehind(st.describe())
                    # Rows leave the outbox once the commit is acknowledged: it must be durable whatever the
                    # server's default (an asynchronous commit is lost when the server crashes).
                    conn.execute("SET synchronous_commit = on")
                    conn.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS ship_batch (LIKE requests INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS"
                    )
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection whose statements the server ends after ``call_timeout_s`` (the client-side deadline
        covers a server that does not answer at all)."""
        conn = psycopg.connect(self.dsn, connect_timeout=2, autocommit=True)
        try:
            with deadline(conn, self.call_timeout_s):
                conn.execute(f"SET statement_timeout = {max(1, round(self.call_timeout_s * 1000))}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _refresh_backlog(self) -> None:
        if self._outbox is None:
            return
        top = self._outbox.execute("SELECT COALESCE(MAX(id), 0) FROM requests").fetchone()[0]
        backlog = max(int(top) - self.position, 0)
        if self.metrics is not None:
            self.metrics.ledger_outbox_rows.set(backlog)
        self.backlog = backlog
        full = self.backlog >= self.outbox_max_rows
        if full != self.local.outbox_full:
            self.local.outbox_full = full
            if full:
                log.error(
                    "ledger: the outbox holds %d unshipped rows (outbox_max_rows); new rows are refused until "
                    "PostgreSQL is reachable",
                    self.backlog,
                )

    def _ship_batch(self) -> bool:
        """Ship one batch; True when there may be more."""
        if not self._outbox.execute(
            "SELECT 1 FROM requests WHERE id > ? LIMIT 1", (self.position,)
        ).fetchone():
            return False
        # the connection before the rows: while the database is down, a retry costs a failed connect, not a
        # batch of rows turned into Python objects (work that holds the GIL beside the request path)
        conn = self._db()
        rows = self._outbox.execute(
            f"SELECT id, {_COLS} FROM requests WHERE id > ? ORDER BY id LIMIT ?",
            (self.position, self.batch_size),
        ).fetchall()
        last = rows[-1][0]
        batch = [r[1:] for r in rows]
        ts_i = COLUMNS.index("ts")
        with deadline(conn, self.call_timeout_s), conn.transaction():
            days = {pg_schema.day_start(r[ts_i]) for r in batch} - self._days
            if days:
                pg_schema.ensure_partitions(conn, days)
            cur = conn.cursor()
            with cur.copy(f"COPY ship_batch ({_COLS}) FROM STDIN") as cp:
                for r in batch:
                    cp.write_row(r)
            cur.execute(_SHIP)
            inserted = {u for (u,) in cur.fetchall()}
            fresh = [r for r in batch if r[0] in inserted]
            deltas = spend_deltas(fresh)
            if deltas:
                cur.executemany(_UPSERT_BUDGET, [(s, n, b, v[0], v[1]) for (s, n, b), v in deltas.items()])
        self._days |= days
        # The row with the highest id stays: SQLite gives a new row max(id) + 1, so ids keep rising.
        self._outbox.execute("BEGIN IMMEDIATE")
        self._outbox.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (_POSITION, str(last)))
        self._outbox.execute("DELETE FROM requests WHERE id < ?", (last,))
        self._outbox.execute("COMMIT")
        self.shipped += len(fresh)
        if self.metrics is not None and fresh:
            self.metrics.ledger_shipped_rows.inc(len(fresh))
        run_callbacks(self.on_ship, fresh, deltas, "ship")
        # last: whoever waits on the position (``caught_up``) then sees the batch's counts and budget effects
        self.position = last
        return len(rows) == self.batch_size

    def _maintain(self) -> None:
        """Partitions for the days ahead, and retention; at start and then hourly."""
        now = time.time()
        if now - self._maintained < pg_schema.HOUR_S:
            return
        conn = self._db()
        with deadline(conn, self.call_timeout_s), conn.transaction():
            today = pg_schema.day_start(now)
            pg_schema.ensure_partitions(
                conn, [today + i * pg_schema.DAY_S for i in range(self.partitions_ahead_days + 1)]
            )
            if self.retention_days is not None:
                for name in pg_schema.drop_expired(conn, self.retention_days, now):
                    log.info("ledger: dropped partition %s (retention %d days)", name, self.retention_days)
        self._maintained = now

    # -- queries (any thread) -----------------------------------------------------------------------------------
    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of one query (``LedgerUnavailable`` when the database cannot answer in time)."""
        with self._query_lock:
            try:
                if self._query_conn is None or self._query_conn.closed:
                    self._query_conn = self._connect()
                with deadline(self._query_conn, self.call_timeout_s):
                    return self._query_conn.execute(sql, args).fetchall()
            except psycopg.OperationalError as exc:
                if self._query_conn is not None:
                    self._query_conn.close()
                    self._query_conn = None
                raise LedgerUnavailable(
                    f"the ledger database ({dsn_target(self.dsn)}) did not answer: {exc}"
                ) from exc

    def budget_spend(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
        want = list(keys)
        if not want:
            return {}
        rows = self._query(
            "SELECT scope, name, bucket, nusd FROM budget_spend WHERE (scope, name, bucket) IN ("
            + ", ".join("(%s, %s, %s)" for _ in want)
            + ")",
            [v for k in want for v in k],
        )
        got = {(s, n, b): int(v) for s, n, b, v in rows}
        return {k: got.get(k, 0) for k in want}

    def spend(
        self,
        group_by: Sequence[str],
        since: float | None,
        until: float | None,
        filters: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        sql, args = spend_sql(group_by, since, until, filters)
        return spend_items(group_by, self._query(sql, args))


def spend_sql(
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
    filters: dict[str, str] | None = None,
) -> tuple[str, list[Any]]:
    """The report's SQL: daily rollup rows for the whole days in ``[since, until)``, hourly ones for the whole
    hours around them, raw rows for the partial hours at its ends (``spend_report.spend_select``)."""
    return spend_select(group_by, since, until, filters, _DIALECT)
