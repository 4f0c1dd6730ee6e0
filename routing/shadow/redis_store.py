"""Shadow pairs in Redis (``redis.url``): every replica writes to and reads from the same Redis, so the report and
the promotion controller see all replicas' pairs. The same queued, batched writes as the SQLite store
(``routing.shadow.store.BufferedWrites``); a pair is written once per request id (``SET NX``).

Keys (under ``prefix``): ``pair:<id>`` (JSON) indexed by ``pairs:<route>`` (a sorted set on time); ``routes``;
``seenday:<utc day>:<route>`` (a hash of per-minute request counts, expiring a day after the pairs it counts);
``obs:<route>``, ``spend:<route>:<day>``, promotions, events and leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from accounting.resp import Arg, RespClient
from routing.shadow.record import PairRecord
from routing.shadow.store import RETENTION_S, Batch, BufferedWrites, Observation, log


class RedisPairStore(BufferedWrites):
    """Pairs in Redis: ``pair:<id>`` (JSON, written with NX) indexed by a per-route sorted set on time. Spoken to
    through the gateway's own pipelined client (``accounting.resp``): a flush is one write of all its commands."""

    def __init__(self, url: str, prefix: str = "pointsman:shadow:", flush_interval_s: float = 0.25) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self.flush_interval_s = flush_interval_s
        self._r: RespClient | None = None
        self._task: asyncio.Task[None] | None = None

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

    async def _write_batch(self, batch: Batch) -> None:
        pairs, seen, obs, spend = batch
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
