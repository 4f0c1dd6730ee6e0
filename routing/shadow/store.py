"""The pair store: pair records, route volume, shadow spend, and promotion state, behind one small interface.

- ``SQLitePairStore`` (embedded): a WAL-mode file under ``server.data_dir``. Writes from the event loop are
  queued and committed in batches by a single worker thread (at least every ``flush_interval_s`` and on close),
  so the request path never waits on the disk. Several ``--workers`` processes share the file.
- ``RedisPairStore`` (``routing.shadow.redis_store``, with ``redis.url``): every replica writes to and reads from
  the same Redis, so the report and the promotion controller see all replicas' pairs.
- ``PostgresPairStore`` (``routing.shadow.pg_store``, with ``database: {backend: postgres}``): the same tables
  in the database's ``shadow`` schema, shared by every replica; wins over Redis when both are configured.

A pair is written once per request id (``INSERT OR IGNORE`` / ``SET NX``): a retried write can never make two.
Route volume (requests that matched a shadowed route, sampled or not) is kept as per-minute counters, for the
report's projected monthly saving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import orjson

from routing.shadow.record import PairRecord
from routing.store import SQLConnection

log = logging.getLogger("pointsman.shadow")
T = TypeVar("T")

RETENTION_S = 30 * 86400.0
"""Pairs, counters and observations older than this are pruned."""


class Observation:
    """A live request on a route under promotion (for guards): who served it and how it went."""

    __slots__ = ("ts", "role", "ok", "latency_s")

    ts: Final[float]
    role: Final[str]
    """``candidate`` or ``baseline``."""
    ok: Final[bool]
    latency_s: Final[float]

    def __init__(self, ts: float, role: str, ok: bool, latency_s: float) -> None:
        self.ts = ts
        self.role = role
        self.ok = ok
        self.latency_s = latency_s

    def _key(self) -> tuple[float, str, bool, float]:
        """What it is compared and hashed by."""
        return (self.ts, self.role, self.ok, self.latency_s)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Observation):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class PairStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def flush(self) -> None:
        """Write everything queued so far."""

    def add_pair(self, pair: PairRecord) -> None:
        """Queue a pair (never blocks)."""

    def add_seen(self, route: str, task: str | None, ts: float) -> None:
        """Count one request on a shadowed route (never blocks)."""

    def add_observation(self, route: str, obs: Observation) -> None:
        """Record a live request of a route under promotion (never blocks)."""

    def add_spend(self, route: str, day: str, nusd: int) -> None:
        """Add shadow spend (nano-USD) for a UTC day (never blocks)."""

    async def spend(self, route: str, day: str) -> int: ...

    async def pairs(
        self,
        route: str | None,
        since: float | None,
        until: float | None,
        limit: int | None = None,
        outcome: str | None = None,
    ) -> list[PairRecord]:
        """The pairs in ``[since, until]`` (of ``outcome`` only, when given), oldest first; with ``limit``, only the
        latest ``limit`` of them, and only those are read."""

    async def count_pairs(self, route: str, since: float | None, until: float | None) -> int:
        """How many pairs of the route are in ``[since, until]`` (without reading them)."""

    async def pair(self, pair_id: str) -> PairRecord | None: ...

    async def seen(
        self, route: str, since: float | None, until: float | None
    ) -> list[tuple[str | None, int, int]]:
        """``(task, minute, count)`` rows; ``minute`` is ``int(ts // 60)``."""

    async def routes(self) -> list[str]: ...

    async def observations(self, route: str, since: float) -> list[Observation]: ...

    async def get_promotion(self, route: str) -> dict[str, Any] | None: ...

    async def put_promotion(self, route: str, doc: dict[str, Any] | None) -> None: ...

    async def promotions(self) -> list[dict[str, Any]]:
        """Every stored promotion state (any status)."""

    async def add_event(self, route: str, event: dict[str, Any]) -> None: ...

    async def events(self, route: str) -> list[dict[str, Any]]: ...

    async def try_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Hold (or renew) a named lease for ``ttl_s``; True when this owner holds it."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    route TEXT NOT NULL,
    task TEXT,
    outcome TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS pairs_route_ts ON pairs (route, ts);
CREATE INDEX IF NOT EXISTS pairs_ts ON pairs (ts);
CREATE TABLE IF NOT EXISTS seen (
    route TEXT NOT NULL, task TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (route, task, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_route_minute ON seen (route, minute);
CREATE TABLE IF NOT EXISTS spend (
    route TEXT NOT NULL, day TEXT NOT NULL, nusd INTEGER NOT NULL, PRIMARY KEY (route, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS observations (
    route TEXT NOT NULL, ts REAL NOT NULL, role TEXT NOT NULL, ok INTEGER NOT NULL, latency_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS observations_route_ts ON observations (route, ts);
CREATE TABLE IF NOT EXISTS promotions (route TEXT PRIMARY KEY, doc BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS promotion_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, route TEXT NOT NULL, ts REAL NOT NULL, doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
"""


_ROUTES_SQL = (
    "WITH RECURSIVE r(route) AS (SELECT MIN(route) FROM pairs UNION ALL "
    "SELECT (SELECT MIN(route) FROM pairs WHERE route > r.route) FROM r WHERE r.route IS NOT NULL) "
    "SELECT route FROM r WHERE route IS NOT NULL"
)
"""The distinct routes of the pairs, in order."""


Batch = tuple[
    list[PairRecord],
    dict[tuple[str, str, int], int],
    list[tuple[str, Observation]],
    dict[tuple[str, str], int],
]
"""One flush's queued writes: pairs, requests seen per (route, task, minute), observations, spend per (route, day)."""


class BufferedWrites:
    """The queued-writes part shared by the SQLite (and PostgreSQL) and Redis stores: what is queued, and the flush
    that takes it, writes it (``_write_batch``) and puts it back when the write fails."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._pairs: list[PairRecord] = []
        self._seen: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self._obs: list[tuple[str, Observation]] = []
        self._spend: defaultdict[tuple[str, str], int] = defaultdict(int)

    def add_pair(self, pair: PairRecord) -> None:
        self._pairs.append(pair)

    def add_seen(self, route: str, task: str | None, ts: float) -> None:
        self._seen[(route, task or "", int(ts // 60))] += 1

    def add_observation(self, route: str, obs: Observation) -> None:
        self._obs.append((route, obs))

    def add_spend(self, route: str, day: str, nusd: int) -> None:
        if nusd:
            self._spend[(route, day)] += nusd

    def _take(self) -> Batch:
        batch = (self._pairs, dict(self._seen), self._obs, dict(self._spend))
        self._pairs, self._obs = [], []
        self._seen.clear()
        self._spend.clear()
        return batch

    def _put_back(self, batch: Batch) -> None:
        """A batch ``_take`` gave whose write failed, queued again ahead of what came since: nothing is lost, the
        next flush retries."""
        pairs, seen, obs, spend = batch
        self._pairs[:0] = pairs
        for k, v in seen.items():
            self._seen[k] += v
        self._obs[:0] = obs
        for k2, v2 in spend.items():
            self._spend[k2] += v2

    async def flush(self) -> None:
        """Write what is queued, one flush at a time; a batch whose write fails is queued again (and the error
        raised)."""
        async with self._lock:
            if not self._pending():
                return
            batch = self._take()
            try:
                await self._write_batch(batch)
            except Exception:
                self._put_back(batch)
                raise

    async def _write_batch(self, batch: Batch) -> None:
        """Write one batch to the store (each store's own)."""
        raise NotImplementedError

    def _pending(self) -> bool:
        return bool(self._pairs or self._seen or self._obs or self._spend)


class SQLitePairStore(BufferedWrites):
    def __init__(self, path: str, flush_interval_s: float = 0.25) -> None:
        super().__init__()
        self.path = path
        self.flush_interval_s = flush_interval_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-store")
        self._db: SQLConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db

    def _conn(self) -> SQLConnection:
        assert self._db is not None, "store not started"
        return self._db

    async def start(self) -> None:
        await self._run(self._open)
        self._task = asyncio.get_running_loop().create_task(self._writer())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    async def _writer(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:
                log.exception("shadow store: write failed; will retry")

    async def _write_batch(self, batch: Batch) -> None:
        await self._run(lambda: self._write(batch))

    def _write(self, batch: Batch) -> None:
        pairs, seen, obs, spend = batch
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO pairs (id, ts, route, task, outcome, doc) VALUES (?, ?, ?, ?, ?, ?)",
                # (a generator: each pair's JSON is freed once inserted; see ``accounting.ledger.rows_to_json_lines``)
                ((p.id, p.ts, p.route, p.task, p.outcome, orjson.dumps(p.to_dict())) for p in pairs),
            )
            db.executemany(
                "INSERT INTO seen (route, task, minute, n) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (route, task, minute) DO UPDATE SET n = seen.n + excluded.n",
                [(r, t, m, n) for (r, t, m), n in seen.items()],
            )
            db.executemany(
                "INSERT INTO observations (route, ts, role, ok, latency_s) VALUES (?, ?, ?, ?, ?)",
                [(r, o.ts, o.role, int(o.ok), o.latency_s) for r, o in obs],
            )
            db.executemany(
                "INSERT INTO spend (route, day, nusd) VALUES (?, ?, ?) "
                "ON CONFLICT (route, day) DO UPDATE SET nusd = spend.nusd + excluded.nusd",
                [(r, d, n) for (r, d), n in spend.items()],
            )
            now = time.time()
            if now - self._last_prune > 3600:
                cutoff = now - RETENTION_S
                db.execute("DELETE FROM pairs WHERE ts < ?", (cutoff,))
                db.execute("DELETE FROM seen WHERE minute < ?", (int(cutoff // 60),))
                db.execute("DELETE FROM observations WHERE ts < ?", (cutoff,))
                self._last_prune = now
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- reads ----------------------------------------------------------------------------------------------
    async def _query(self, sql: str, args: Iterable[Any]) -> list[tuple[Any, ...]]:
        a = tuple(args)
        return await self._run(lambda: self._conn().execute(sql, a).fetchall())

    async def spend(self, route: str, day: str) -> int:
        rows = await self._query("SELECT nusd FROM spend WHERE route = ? AND day = ?", (route, day))
        return int(rows[0][0]) if rows else 0

    async def pairs(
        self,
        route: str | None,
        since: float | None,
        until: float | None,
        limit: int | None = None,
        outcome: str | None = None,
    ) -> list[PairRecord]:
        sql = "SELECT doc FROM pairs WHERE ts >= ? AND ts <= ?"
        args: list[Any] = [since or 0.0, until or 1e18]
        if route is not None:
            sql += " AND route = ?"
            args.append(route)
        if outcome is not None:
            sql += " AND outcome = ?"
            args.append(outcome)
        if limit is None:
            rows = await self._query(sql + " ORDER BY ts", args)
        else:
            rows = await self._query(sql + " ORDER BY ts DESC LIMIT ?", [*args, limit])
            rows.reverse()
        return [PairRecord.from_dict(orjson.loads(r[0])) for r in rows]

    async def count_pairs(self, route: str, since: float | None, until: float | None) -> int:
        rows = await self._query(
            "SELECT COUNT(*) FROM pairs WHERE route = ? AND ts >= ? AND ts <= ?",
            (route, since or 0.0, until or 1e18),
        )
        return int(rows[0][0])

    async def pair(self, pair_id: str) -> PairRecord | None:
        rows = await self._query("SELECT doc FROM pairs WHERE id = ?", (pair_id,))
        return PairRecord.from_dict(orjson.loads(rows[0][0])) if rows else None

    async def seen(
        self, route: str, since: float | None, until: float | None
    ) -> list[tuple[str | None, int, int]]:
        lo = int((since or 0.0) // 60)
        hi = int((until or 1e18) // 60)
        rows = await self._query(
            "SELECT task, minute, n FROM seen WHERE route = ? AND minute >= ? AND minute <= ?",
            (route, lo, hi),
        )
        return [(t or None, int(m), int(n)) for t, m, n in rows]

    async def routes(self) -> list[str]:
        # one index probe per route (a "skip scan"), not a walk over every pair of 30 days
        rows = await self._query(_ROUTES_SQL, ())
        return sorted(r[0] for r in rows)

    async def observations(self, route: str, since: float) -> list[Observation]:
        rows = await self._query(
            "SELECT ts, role, ok, latency_s FROM observations WHERE route = ? AND ts >= ? ORDER BY ts",
            (route, since),
        )
        return [Observation(ts, role, bool(ok), lat) for ts, role, ok, lat in rows]

    async def get_promotion(self, route: str) -> dict[str, Any] | None:
        rows = await self._query("SELECT doc FROM promotions WHERE route = ?", (route,))
        return orjson.loads(rows[0][0]) if rows else None

    async def put_promotion(self, route: str, doc: dict[str, Any] | None) -> None:
        if doc is None:
            await self._query("DELETE FROM promotions WHERE route = ?", (route,))
        else:
            await self._query(
                "INSERT INTO promotions (route, doc) VALUES (?, ?) ON CONFLICT (route) DO UPDATE SET doc = excluded.doc",
                (route, orjson.dumps(doc)),
            )

    async def promotions(self) -> list[dict[str, Any]]:
        rows = await self._query("SELECT doc FROM promotions ORDER BY route", ())
        return [orjson.loads(r[0]) for r in rows]

    async def add_event(self, route: str, event: dict[str, Any]) -> None:
        await self._query(
            "INSERT INTO promotion_events (route, ts, doc) VALUES (?, ?, ?)",
            (route, float(event.get("ts", time.time())), orjson.dumps(event)),
        )

    async def events(self, route: str) -> list[dict[str, Any]]:
        rows = await self._query("SELECT doc FROM promotion_events WHERE route = ? ORDER BY id", (route,))
        return [orjson.loads(r[0]) for r in rows]

    async def try_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        def go() -> bool:
            db = self._conn()
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT owner, expires FROM leases WHERE name = ?", (name,)).fetchone()
                mine = row is None or row[0] == owner or row[1] < now
                if mine:
                    db.execute(
                        "INSERT INTO leases (name, owner, expires) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                        "SET owner = excluded.owner, expires = excluded.expires",
                        (name, owner, now + ttl_s),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return mine

        return await self._run(go)


def open_store(redis_url: str | None, data_dir: str, dsn: str | None = None) -> PairStore:
    """PostgreSQL when the database is configured (``dsn``), else Redis when configured, else the file."""
    if dsn:
        from routing.shadow.pg_store import PostgresPairStore  # only with the database configured

        return PostgresPairStore(dsn)
    if redis_url:
        from routing.shadow.redis_store import RedisPairStore  # only with Redis configured

        return RedisPairStore(redis_url)
    return SQLitePairStore(os.path.join(data_dir, "shadow.sqlite3"))
