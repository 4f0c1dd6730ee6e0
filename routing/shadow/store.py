"""The pair store: pair records, route volume, shadow spend, and promotion state, behind one small interface.

- ``SQLitePairStore`` (embedded): a WAL-mode file under ``server.data_dir``. Writes from the event loop are
  queued and committed in batches by a single worker thread (at least every ``flush_interval_s`` and on close),
  so the request path never waits on the disk. Several ``--workers`` processes share the file.
- ``RedisPairStore`` (with ``redis.url``): every replica writes to and reads from the same Redis, so the report
  and the promotion controller see all replicas' pairs.
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
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from accounting.resp import Arg, RespClient
from routing.shadow.record import PairRecord
from routing.store import SQLConnection

log = logging.getLogger("pointsman.shadow")
T = TypeVar("T")

RETENTION_S = 30 * 86400.0
"""Pairs, counters and observations older than this are pruned."""


@dataclass(frozen=True, slots=True)
class Observation:
    """A live request on a route under promotion (for guards): who served it and how it went."""

    ts: float
    role: str
    """``candidate`` or ``baseline``."""
    ok: bool
    latency_s: float


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


class _Buffered:
    """The queued-writes part shared by both stores."""

    def __init__(self) -> None:
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

    def _take(
        self,
    ) -> tuple[
        list[PairRecord],
        dict[tuple[str, str, int], int],
        list[tuple[str, Observation]],
        dict[tuple[str, str], int],
    ]:
        batch = (self._pairs, dict(self._seen), self._obs, dict(self._spend))
        self._pairs, self._obs = [], []
        self._seen.clear()
        self._spend.clear()
        return batch

    def _pending(self) -> bool:
        return bool(self._pairs or self._seen or self._obs or self._spend)


class SQLitePairStore(_Buffered):
    def __init__(self, path: str, flush_interval_s: float = 0.25) -> None:
        super().__init__()
        self.path = path
        self.flush_interval_s = flush_interval_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-store")
        self._db: SQLConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
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

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending():
                return
            pairs, seen, obs, spend = self._take()
            try:
                await self._run(lambda: self._write(pairs, seen, obs, spend))
            except Exception:
                # put them back so nothing is lost; the next flush retries
                self._pairs[:0] = pairs
                for k, v in seen.items():
                    self._seen[k] += v
                self._obs[:0] = obs
                for k2, v2 in spend.items():
                    self._spend[k2] += v2
                raise

    def _write(
        self,
        pairs: list[PairRecord],
        seen: dict[tuple[str, str, int], int],
        obs: list[tuple[str, Observation]],
        spend: dict[tuple[str, str], int],
    ) -> None:
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


class RedisPairStore(_Buffered):
    """Pairs in Redis: ``pair:<id>`` (JSON, written with NX) indexed by a per-route sorted set on time. Spoken to
    through the gateway's own pipelined client (``accounting.resp``): a flush is one write of all its commands."""

    def __init__(self, url: str, prefix: str = "pointsman:shadow:", flush_interval_s: float = 0.25) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self.flush_interval_s = flush_interval_s
        self._r: RespClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def _redis(self) -> RespClient:
        assert self._r is not None, "RedisPairStore used before start()"
        return self._r

    async def _do(self, *args: Arg) -> Any:
        return await self._redis.execute(*args)

    async def start(self) -> None:
        self._r = RespClient(self.url, timeout_s=5, connect_timeout_s=2)
        # Redis down at start: the writer retries its writes; the old counters wait for the next start
        with contextlib.suppress(Exception):
            await self._expire_legacy_seen()
        self._task = asyncio.get_running_loop().create_task(self._writer())

    async def _expire_legacy_seen(self) -> None:
        """Earlier versions counted a route's requests in one hash per route, never trimmed: give each such hash
        the pairs' retention (once: one that has an expiry keeps it), so that it goes when its pairs have gone."""
        legacy = [self._k("seen", r) for r in await self.routes()]
        if not legacy:
            return
        ttls = await self._redis.pipeline([("TTL", key) for key in legacy])
        await self._redis.pipeline(
            [("EXPIRE", key, int(RETENTION_S)) for key, t in zip(legacy, ttls, strict=True) if t == -1]
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        if self._r is not None:
            await self._r.aclose()
            self._r = None

    async def _writer(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("shadow store: Redis write failed (%s); will retry", exc)

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending():
                return
            pairs, seen, obs, spend = self._take()
            try:
                await self._write(pairs, seen, obs, spend)
            except Exception:
                self._pairs[:0] = pairs
                for k, v in seen.items():
                    self._seen[k] += v
                self._obs[:0] = obs
                for k2, v2 in spend.items():
                    self._spend[k2] += v2
                raise

    async def _write(
        self,
        pairs: list[PairRecord],
        seen: dict[tuple[str, str, int], int],
        obs: list[tuple[str, Observation]],
        spend: dict[tuple[str, str], int],
    ) -> None:
        ttl = int(RETENTION_S)
        now = time.time()
        k = self._k
        cmds: list[tuple[Arg, ...]] = []
        for p in pairs:
            cmds.append(("SET", k("pair", p.id), orjson.dumps(p.to_dict()), "NX", "EX", ttl))
            cmds.append(("ZADD", k("pairs", p.route), "NX", p.ts, p.id))
        if pairs:
            cmds.append(("SADD", k("routes"), *sorted({p.route for p in pairs})))
        days: set[tuple[str, int]] = set()
        for (r, t, m), n in seen.items():
            cmds.append(("HINCRBY", k("seenday", str(m // 1440), r), f"{t}\x1f{m}", n))
            days.add((r, m // 1440))
        for r, day in days:  # a day's counts go with the pairs they describe
            cmds.append(("EXPIRE", k("seenday", str(day), r), ttl + 86400))
        for r, o in obs:
            member = orjson.dumps([uuid.uuid4().hex[:12], o.role, int(o.ok), o.latency_s])
            cmds.append(("ZADD", k("obs", r), o.ts, member))
            cmds.append(("ZREMRANGEBYSCORE", k("obs", r), 0, now - RETENTION_S))
        for (r, d), n in spend.items():
            cmds.append(("INCRBY", k("spend", r, d), n))
            cmds.append(("EXPIRE", k("spend", r, d), 3 * 86400))
        for r in {p.route for p in pairs}:
            cmds.append(("ZREMRANGEBYSCORE", k("pairs", r), 0, now - RETENTION_S))
        await self._redis.pipeline(cmds)

    async def spend(self, route: str, day: str) -> int:
        v = await self._do("GET", self._k("spend", route, day))
        return int(v) if v else 0

    async def pairs(
        self,
        route: str | None,
        since: float | None,
        until: float | None,
        limit: int | None = None,
        outcome: str | None = None,
    ) -> list[PairRecord]:
        routes = [route] if route is not None else await self.routes()
        out: list[PairRecord] = []
        lo, hi = since or 0.0, until or 1e18
        for r in routes:
            if limit is None:
                ids = await self._do("ZRANGEBYSCORE", self._k("pairs", r), lo, hi)
                out.extend(p for p in await self._docs(ids) if outcome in (None, p.outcome))
            else:
                out.extend(await self._latest(r, lo, hi, limit, outcome))
        out.sort(key=lambda p: p.ts)
        return out if limit is None else out[len(out) - limit :] if len(out) > limit else out

    async def _docs(self, ids: Sequence[bytes]) -> list[PairRecord]:
        """The pairs of these ids that are still stored, 500 to a request."""
        out: list[PairRecord] = []
        for i in range(0, len(ids), 500):
            docs = await self._do("MGET", *[self._k("pair", x.decode()) for x in ids[i : i + 500]])
            out.extend(PairRecord.from_dict(orjson.loads(d)) for d in docs if d)
        return out

    async def _latest(
        self, route: str, lo: float, hi: float, limit: int, outcome: str | None
    ) -> list[PairRecord]:
        """The route's latest ``limit`` pairs (of ``outcome``): newest first from the time index, a page at a time
        until enough are found (the outcome is in the document only)."""
        out: list[PairRecord] = []
        offset, page = 0, max(limit, 100) if outcome is None else max(2 * limit, 500)
        while len(out) < limit:
            ids = await self._do("ZREVRANGEBYSCORE", self._k("pairs", route), hi, lo, "LIMIT", offset, page)
            if not ids:
                break
            offset += len(ids)
            out.extend(p for p in await self._docs(ids) if outcome in (None, p.outcome))
        return out[:limit]

    async def count_pairs(self, route: str, since: float | None, until: float | None) -> int:
        return int(await self._do("ZCOUNT", self._k("pairs", route), since or 0.0, until or 1e18))

    async def pair(self, pair_id: str) -> PairRecord | None:
        d = await self._do("GET", self._k("pair", pair_id))
        return PairRecord.from_dict(orjson.loads(d)) if d else None

    async def seen(
        self, route: str, since: float | None, until: float | None
    ) -> list[tuple[str | None, int, int]]:
        lo = int((since or 0.0) // 60)
        hi = int((until or 1e18) // 60)
        today = int(time.time() // 86400)
        first, last = max(lo // 1440, today - int(RETENTION_S // 86400) - 1), min(hi // 1440, today + 1)
        # one hash per UTC day (kept as long as the pairs); the one hash per route of earlier versions is read too
        keys = [self._k("seenday", str(d), route) for d in range(first, last + 1)]
        replies = await self._redis.pipeline([("HGETALL", key) for key in (*keys, self._k("seen", route))])
        out: list[tuple[str | None, int, int]] = []
        for raw in replies:
            for f, n in zip(raw[0::2], raw[1::2], strict=True):
                t, _, m = f.decode().rpartition("\x1f")
                if lo <= int(m) <= hi:
                    out.append((t or None, int(m), int(n)))
        return out

    async def routes(self) -> list[str]:
        return sorted(x.decode() for x in await self._do("SMEMBERS", self._k("routes")))

    async def observations(self, route: str, since: float) -> list[Observation]:
        rows = await self._do("ZRANGEBYSCORE", self._k("obs", route), since, "+inf", "WITHSCORES")
        out = []
        for member, ts in zip(rows[0::2], rows[1::2], strict=True):
            _, role, ok, lat = orjson.loads(member)
            out.append(Observation(float(ts), role, bool(ok), float(lat)))
        return out

    async def get_promotion(self, route: str) -> dict[str, Any] | None:
        d = await self._do("GET", self._k("promotion", route))
        return orjson.loads(d) if d else None

    async def put_promotion(self, route: str, doc: dict[str, Any] | None) -> None:
        if doc is None:
            await self._do("DEL", self._k("promotion", route))
            await self._do("SREM", self._k("promotions"), route)
        else:
            await self._do("SET", self._k("promotion", route), orjson.dumps(doc))
            await self._do("SADD", self._k("promotions"), route)

    async def promotions(self) -> list[dict[str, Any]]:
        routes = sorted(x.decode() for x in await self._do("SMEMBERS", self._k("promotions")))
        if not routes:
            return []
        docs = await self._do("MGET", *[self._k("promotion", r) for r in routes])
        return [orjson.loads(d) for d in docs if d]

    async def add_event(self, route: str, event: dict[str, Any]) -> None:
        await self._do("RPUSH", self._k("events", route), orjson.dumps(event))

    async def events(self, route: str) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in await self._do("LRANGE", self._k("events", route), 0, -1)]

    async def try_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        key = self._k("lease", name)
        ms = max(1, int(ttl_s * 1000))
        if await self._do("SET", key, owner, "NX", "PX", ms):
            return True
        cur = await self._do("GET", key)
        if cur is not None and cur.decode() == owner:
            await self._do("PEXPIRE", key, ms)
            return True
        return False


def open_store(redis_url: str | None, data_dir: str, dsn: str | None = None) -> PairStore:
    """PostgreSQL when the database is configured (``dsn``), else Redis when configured, else the file."""
    if dsn:
        from routing.shadow.pg_store import PostgresPairStore  # only with the database configured

        return PostgresPairStore(dsn)
    if redis_url:
        return RedisPairStore(redis_url)
    return SQLitePairStore(os.path.join(data_dir, "shadow.sqlite3"))
