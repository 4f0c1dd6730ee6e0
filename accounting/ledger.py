"""The durable spend ledger: one row per request.

``Ledger`` is the small interface the accountant uses: ``append`` (non-blocking, from the event loop),
``budget_spend`` (per key/team/period totals), ``start``/``close``; reports (grouped totals for ``/admin/spend``
and the CLI) read the file through ``accounting.ledger_reports``. Two implementations:

* ``SQLiteLedger``: a WAL-mode SQLite file under ``server.data_dir``. ``append`` puts the row on an in-memory
  queue; a writer thread commits queued rows in batches at least every ``flush_interval_s`` (<= 1 s) and on
  ``close`` (the lifespan shutdown, i.e. SIGTERM): a graceful stop loses nothing, a crash at most the last
  interval. Per key/team/day/month spend totals are maintained in the same transaction, so budget checks read
  a handful of rows however large the ledger grows; so are hourly and daily rollups (``spend_hourly``,
  ``spend_daily``: per period and every ``spend_report.ROLLUP_DIMS`` value, the ``ROLLUP_SUMS`` of the rows
  actually inserted, ``accounting.ledger_rollups``), so a report reads the rollups for the whole hours and days
  of its window and raw rows only for the partial hours at its ends, as the PostgreSQL ledger does.
* ``SharedLedger`` (with Redis): the same SQLite file, plus every row is published to a Redis stream, and every
  replica copies the stream into its own file (idempotently, by row uid). Queries stay local SQL, and cover
  all replicas. While Redis is unreachable rows are still written locally and published when it returns.

Amounts: ``cost_usd`` is the exact ``Decimal`` as text; ``cost_nusd`` the same in integer nano-dollars
(rounded half-even), which is what sums use (exact integer arithmetic).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from accounting.ledger_rollups import (
    ROLLUP_INTERVAL_S,
    ROLLUP_ROWS,
    add_rollups,
    roll_up,
)
from accounting.money import to_nusd, usd
from accounting.periods import buckets_at
from accounting.record import RequestRecord

log = logging.getLogger("pointsman.ledger")

COLUMNS = (
    "uid",
    "request_id",
    "ts",
    "key",
    "team",
    "task",
    "route",
    "requested_model",
    "upstream_model",
    "backend",
    "endpoint",
    "stream",
    "status",
    "outcome",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_nusd",
    "latency_s",
    "ttft_s",
    "estimated",
    "priced",
    "self_hosted",
    "shadow",
    "fallbacks",
    # added later (migrated in place: ``_migrate``); rows written before read as 0 / standard
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "service_tier",
    "context_threshold",
)
_V1_COLUMNS = 28
"""Columns of the first schema: rows of that length (a replica not yet upgraded) are padded with defaults."""
ADDED_COLUMNS = {
    "cache_write_tokens": ("INTEGER NOT NULL DEFAULT 0", 0),
    "cache_write_1h_tokens": ("INTEGER NOT NULL DEFAULT 0", 0),
    "audio_input_tokens": ("INTEGER NOT NULL DEFAULT 0", 0),
    "audio_output_tokens": ("INTEGER NOT NULL DEFAULT 0", 0),
    "image_input_tokens": ("INTEGER NOT NULL DEFAULT 0", 0),
    "image_output_tokens": ("INTEGER NOT NULL DEFAULT 0", 0),
    "service_tier": ("TEXT NOT NULL DEFAULT 'standard'", "standard"),
    "context_threshold": ("INTEGER NOT NULL DEFAULT 0", 0),
}
"""Columns added since the first schema: SQL type with default, and the default."""
V1_COLUMNS = COLUMNS[:_V1_COLUMNS]
_IDX = {c: i for i, c in enumerate(COLUMNS)}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    key TEXT NOT NULL,
    team TEXT,
    task TEXT,
    route TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    backend TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error_type TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    cost_nusd INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    ttft_s REAL,
    estimated INTEGER NOT NULL,
    priced INTEGER NOT NULL,
    self_hosted INTEGER NOT NULL,
    shadow INTEGER NOT NULL,
    fallbacks INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
    audio_input_tokens INTEGER NOT NULL DEFAULT 0,
    audio_output_tokens INTEGER NOT NULL DEFAULT 0,
    image_input_tokens INTEGER NOT NULL DEFAULT 0,
    image_output_tokens INTEGER NOT NULL DEFAULT 0,
    service_tier TEXT NOT NULL DEFAULT 'standard',
    context_threshold INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);
CREATE TABLE IF NOT EXISTS spend (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    bucket TEXT NOT NULL,
    nusd INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (scope, name, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""
_INSERT = f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_ROWS_PER_INSERT = 256
"""The most rows one INSERT carries (SQLite takes at most 32,766 parameters in a statement)."""
assert _ROWS_PER_INSERT * len(COLUMNS) <= 32766


@functools.lru_cache(maxsize=16)
def _insert_many(n: int) -> str:
    one = f"({', '.join('?' * len(COLUMNS))})"
    return f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) VALUES " + ", ".join([one] * n)


def insert_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (duplicates by ``uid`` ignored) a few statements at a time: the writer thread hands the
    event loop's thread the GIL back a few times per batch instead of once per row (``executemany`` steps each
    row with the GIL released, and under load each re-acquisition waits for the loop: ~10 futex calls per
    request). Statements carry ``_ROWS_PER_INSERT`` rows or a power of two fewer, so that few distinct ones are
    prepared (the connection keeps each prepared statement, and one per row count would hold tens of MB)."""
    i, n = 0, len(rows)
    while i < n:
        size = _ROWS_PER_INSERT
        while size > n - i:
            size //= 2
        chunk = rows[i : i + size]
        conn.execute(_insert_many(size), list(itertools.chain.from_iterable(chunk)))
        i += size


_UPSERT_SPEND = (
    "INSERT INTO spend (scope, name, bucket, nusd, requests) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (scope, name, bucket) DO UPDATE SET nusd = nusd + excluded.nusd, requests = requests + excluded.requests"
)


def row_of(rec: RequestRecord, uid: str) -> tuple[Any, ...]:
    u = rec.usage
    cost = rec.cost_usd
    return (
        uid,
        rec.request_id,
        rec.ts,
        rec.key,
        rec.team,
        rec.task,
        rec.route,
        rec.requested_model,
        rec.upstream_model,
        rec.backend,
        rec.endpoint,
        int(rec.stream),
        rec.status,
        rec.outcome,
        rec.error_type,
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.reasoning_tokens,
        usd(cost),
        to_nusd(cost),
        round(rec.latency_s, 6),
        None if rec.ttft_s is None else round(rec.ttft_s, 6),
        int(u.estimated),
        int(rec.priced),
        int(rec.self_hosted),
        int(rec.shadow),
        rec.fallbacks,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
        u.audio_input_tokens,
        u.audio_output_tokens,
        u.image_input_tokens,
        u.image_output_tokens,
        u.service_tier,
        rec.context_threshold,
    )


def spend_deltas(
    rows: Iterable[Sequence[Any]], out: dict[tuple[str, str, str], list[int]] | None = None
) -> dict[tuple[str, str, str], list[int]]:
    """(scope, name, bucket) -> [nusd, requests] for key and team, per UTC day and month; added to ``out`` (and
    returned) when given."""
    if out is None:
        out = {}
    ik, it, its, ic, ish = _IDX["key"], _IDX["team"], _IDX["ts"], _IDX["cost_nusd"], _IDX["shadow"]
    for r in rows:
        if r[ish]:
            continue  # shadow calls are paid from the route's shadow budget, not the client's
        b = buckets_at(r[its])
        buckets = (b["daily"], b["monthly"])
        cost = r[ic]
        for scope, name in (("key", r[ik]), ("team", r[it])):
            if not name:
                continue
            for bucket in buckets:
                acc = out.get((scope, name, bucket))
                if acc is None:
                    out[(scope, name, bucket)] = [cost, 1]
                else:
                    acc[0] += cost
                    acc[1] += 1
    return out


class Ledger(Protocol):
    path: str

    def start(self) -> None: ...

    def append(self, rec: RequestRecord) -> None: ...

    async def close(self) -> None: ...

    def budget_spend(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]: ...


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a ledger written by an earlier version up to ``COLUMNS`` (added columns take their defaults)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(requests)")}
    for name, (sql_type, _) in ADDED_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {sql_type}")


def column_types() -> dict[str, tuple[str, bool, str | None]]:
    """Each ledger column's SQLite type, NOT NULL and default, as the schema above declares them (read back
    from an in-memory database): what other stores (PostgreSQL) derive their columns from."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA)
        info = conn.execute("PRAGMA table_info(requests)").fetchall()
    finally:
        conn.close()
    return {r[1]: (r[2], bool(r[3]), r[4]) for r in info if r[1] in _IDX}


def connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SQLiteLedger:
    """Batched, off-request-path SQLite writer (see the module docstring)."""

    def __init__(
        self,
        path: str,
        flush_interval_s: float = 0.5,
        batch_size: int = 2000,
        max_pending: int = 200_000,
        rollups: bool = True,
        rollup_interval_s: float = ROLLUP_INTERVAL_S,
    ) -> None:
        self.path = path
        self.rollups = rollups
        """Keep the hourly and daily rollups (not in the PostgreSQL ledger's local outbox, which reports never
        read)."""
        self.rollup_interval_s = rollup_interval_s
        self._next_roll = 0.0
        """When the writer next rolls up (``time.monotonic``; at once after a start)."""
        self._unrolled = 0
        """Rows written since the last rollup (an upper bound: copies may have been inserted already)."""
        self.rollup_backlog: int | None = None
        """Rows the rollups did not hold after the writer's last pass (a ledger written before them is rolled up
        in chunks: ``/admin/ledger`` shows how far); None before the first."""
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.replica = os.urandom(6).hex()
        self._seq = 0
        self._pending: deque[tuple[Any, ...]] = deque()
        self._foreign: deque[tuple[str, list[tuple[Any, ...]]]] = deque()
        self._position: str | None = None
        """The stream position past entries with no foreign rows, not yet written (``add_foreign``)."""
        self._wake = threading.Event()
        self._stop = False
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.dropped = 0
        self.written = 0
        self.on_commit: list[Any] = []
        """Callbacks ``f(rows, deltas)`` run in the writer thread after a batch of own rows is committed (``deltas``:
        their spend per budget bucket)."""
        self.last_error: str | None = None
        self.outbox_full = False
        self.accepted = 0
        """Own rows ever queued (``flushed`` waits until ``written`` reaches it)."""
        """Set by a shipper (``accounting.pg_ledger``) whose unshipped rows reached their bound: refuse rows."""

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        conn.executescript(_SCHEMA)
        migrate(conn)
        if self.rollups:
            add_rollups(conn)
        self._conn = conn
        self._writer = threading.Thread(target=self._run, name="pointsman-ledger", daemon=True)
        self._writer.start()

    async def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join, 60)
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._conn.close()
            self._conn = None

    # -- request path -----------------------------------------------------------------------------------------
    def next_uid(self) -> str:
        self._seq += 1
        return f"{self.replica}-{self._seq:010d}"

    def append(self, rec: RequestRecord) -> tuple[Any, ...] | None:
        """Queue one record (never blocks). Returns the row, or None when the queue is full (counted)."""
        if len(self._pending) >= self.max_pending or self.outbox_full:
            self.dropped += 1
            if self.dropped in (1, 10, 100, 1000) or self.dropped % 10000 == 0:
                log.error(
                    "ledger queue full (%d pending%s): %d records dropped so far",
                    self.max_pending,
                    ", outbox full" if self.outbox_full else "",
                    self.dropped,
                )
            return None
        row = row_of(rec, self.next_uid())
        self._pending.append(row)
        self.accepted += 1
        if len(self._pending) >= self.batch_size:
            self._wake.set()
        return row

    def add_foreign(self, position: str, rows: list[tuple[Any, ...]]) -> None:
        """Rows copied from the shared stream up to ``position`` (inserted idempotently). Without rows (the
        stream's entries up to there were this replica's own), only the position moves: it is written with the
        writer's next batch, without waking it (a wake is a transaction of its own, and each one the writer
        thread runs slows the event loop's thread, on the same core, for a while after)."""
        if not rows and not self._foreign:  # (none queued: none can be written after this position)
            self._position = position
            return
        self._position = None  # this entry's position is later
        self._foreign.append((position, rows))
        if rows:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flushed(self, wait_s: float = 10.0) -> None:
        """Wake the writer and wait (polling, at most ``wait_s``) until what is queued now is committed."""
        target = self.accepted
        self._wake.set()
        deadline = time.monotonic() + wait_s
        while self.written < target and time.monotonic() < deadline:  # noqa: ASYNC110 - the writer is a thread
            await asyncio.sleep(0.005)

    # -- writer thread -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stop = self._stop
            try:
                while self._pending or self._foreign or self._position is not None:
                    self._write_batch()
                    self._roll_up_when_due(stop)
                self._roll_up_when_due(stop)
            except sqlite3.Error as exc:  # disk full, locked for too long: keep the rows and retry
                if self.last_error != str(exc):
                    log.error("ledger write failed (will retry): %s", exc)
                self.last_error = str(exc)
                if stop:
                    time.sleep(0.2)  # noqa: TID251 - writer thread, not the event loop
                    continue
            if stop and not self._pending and not self._foreign and self._position is None:
                return

    def _roll_up_when_due(self, stopping: bool) -> None:
        """Add what was written since to the rollups (a chunk of it, when that is more) every
        ``rollup_interval_s`` or ``ROLLUP_ROWS`` rows, whichever comes first (also while rows keep coming); not
        while stopping (a graceful stop writes the rows; the next start rolls them up)."""
        if not self.rollups or stopping or time.monotonic() < self._next_roll:
            return
        assert self._conn is not None
        _, self.rollup_backlog = roll_up(self._conn)
        self._unrolled = 0
        self._next_roll = time.monotonic() + (0.0 if self.rollup_backlog else self.rollup_interval_s)

    def _write_batch(self) -> None:
        conn = self._conn
        assert conn is not None
        rows: list[tuple[Any, ...]] = []
        while self._pending and len(rows) < self.batch_size:
            rows.append(self._pending.popleft())
        foreign = self._foreign.popleft() if self._foreign else None
        moved = self._position if foreign is None else None  # (written after the queued foreign rows only)
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                insert_rows(conn, rows)
            own = deltas = spend_deltas(rows)
            if foreign is not None:
                position, frows = foreign
                copied = [r for r in frows if conn.execute(_INSERT, r).rowcount]
                if copied:  # added to a copy: ``own`` stays the own rows' only
                    deltas = spend_deltas(copied, {k: list(v) for k, v in own.items()})
                conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('stream_position', ?)", (position,))
            elif moved is not None:
                conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('stream_position', ?)", (moved,))
            if deltas:
                conn.executemany(_UPSERT_SPEND, [(s, n, b, v[0], v[1]) for (s, n, b), v in deltas.items()])
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            # put them back in order for the retry
            self._pending.extendleft(reversed(rows))
            if foreign is not None:
                self._foreign.appendleft(foreign)
            raise
        self.last_error = None
        if moved is not None and self._position is moved:
            self._position = None
        self.written += len(rows)
        if self.rollups:
            self._unrolled += len(rows) + (len(foreign[1]) if foreign is not None else 0)
            if self._unrolled >= ROLLUP_ROWS:
                self._next_roll = 0.0
        run_callbacks(self.on_commit, rows, own, "commit")

    # -- queries (any thread; each opens its own read connection) ------------------------------------------------
    def stream_position(self) -> str | None:
        conn = connect(self.path)
        try:
            row = conn.execute("SELECT v FROM meta WHERE k = 'stream_position'").fetchone()
        finally:
            conn.close()
        return row[0] if row else None

    def budget_spend(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
        want = list(keys)
        if not want:
            return {}
        writer = self._conn if threading.current_thread() is self._writer else None  # after a commit: its own
        conn = writer or connect(self.path)
        try:
            out: dict[tuple[str, str, str], int] = {}
            for scope, name, bucket in want:
                row = conn.execute(
                    "SELECT nusd FROM spend WHERE scope = ? AND name = ? AND bucket = ?",
                    (scope, name, bucket),
                ).fetchone()
                out[(scope, name, bucket)] = int(row[0]) if row else 0
            return out
        finally:
            if conn is not writer:
                conn.close()


def run_callbacks(
    callbacks: Iterable[Any],
    rows: list[tuple[Any, ...]],
    deltas: dict[tuple[str, str, str], list[int]],
    what: str,
) -> None:
    """Call each ``f(rows, deltas)`` (``deltas``: ``spend_deltas(rows)``, which the writer has already made); a
    failing one is logged, never raised into the writer."""
    for cb in callbacks:
        try:
            cb(rows, deltas)
        except Exception:
            log.exception("ledger %s callback failed", what)


def rows_to_json_lines(rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows as JSON lines (one array per row, ``\n`` between them). Written into one buffer, each row's bytes
    freed before the next: holding many ``orjson.dumps`` results at once makes each call ~20x slower (~4 us
    instead of ~0.2 us per row, as each result is left in an allocation of its own)."""
    buf = bytearray()
    dumps, nl = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for row in rows:
        buf += dumps(row if type(row) is tuple else list(row), option=nl)
    del buf[-1:]  # (no newline after the last row)
    return bytes(buf)


def row_from_json(raw: bytes) -> tuple[Any, ...] | None:
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(v, list) or not _V1_COLUMNS <= len(v) <= len(COLUMNS):
        return None
    if len(v) < len(COLUMNS):  # from a replica that does not know the newer columns yet
        v = v + [default for _, default in list(ADDED_COLUMNS.values())[len(v) - _V1_COLUMNS :]]
    return tuple(v)
