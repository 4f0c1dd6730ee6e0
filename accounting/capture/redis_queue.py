"""Capture shared through Redis: a stream of redacted traces drained by sink replicas.

With ``capture.queue: redis`` every replica's writer thread pushes redacted trace rows onto one Redis stream
(``XADD``, approximately capped at ``stream_maxlen``) instead of its own SQLite file. Replicas with
``capture.sink: true`` drain the stream through a consumer group (``capture.sink_group``) into their SQLite
store and acknowledge entries only after the rows are committed, so a sink that dies re-reads what it had not
committed (its own pending entries at restart; another consumer's after ``claim_idle_s``). Inserts are keyed by
request id, so a re-delivered entry is stored once. Replicas sharing a group split the stream; give a replica
its own group to get a full copy. When Redis is unreachable a writer stores its rows in its local SQLite file
instead (durable; counted as ``fallback``), and the sink retries.
Team approvals shared through Redis are ``accounting.approvals.redis_store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from accounting.capture.store import CaptureStore
from wire.tasks import cancel_requested

log = logging.getLogger("pointsman.capture")

STREAM = "pointsman:capture:traces"


class RedisStreamSink:
    """The writer thread's sink with ``queue: redis`` (sync client; runs in the writer thread only)."""

    def __init__(self, url: str, store: CaptureStore, maxlen: int) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        self.store = store
        self.maxlen = maxlen
        self.fallback = 0
        self.degraded = False

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for r in rows:
                pipe.xadd(STREAM, {"row": orjson.dumps(list(r))}, maxlen=self.maxlen, approximate=True)
            pipe.execute()
        except redis.RedisError as exc:
            if not self.degraded:
                log.warning("capture: Redis unreachable (%s); storing traces in the local SQLite file", exc)
            self.degraded = True
            self.store.write_traces(rows)
            self.fallback += len(rows)
            return
        if self.degraded:
            log.info("capture: Redis reachable again; traces go to the shared stream")
        self.degraded = False

    def close(self) -> None:
        self.client.close()


class StreamDrainer:
    """A sink replica's consumer: shared stream -> local SQLite store (ack after commit)."""

    def __init__(
        self,
        url: str,
        store: CaptureStore,
        group: str,
        batch: int = 500,
        claim_idle_s: float = 60.0,
        block_ms: int = 500,
    ) -> None:
        self.url = url
        self.store = store
        self.group = group
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self.batch = batch
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.block_ms = block_ms
        self.client: aioredis.Redis | None = None
        self.task: asyncio.Task[None] | None = None
        self.drained = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        self.client = aioredis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=1)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.client is not None:
            await self.client.aclose()

    async def _ensure_group(self, client: aioredis.Redis) -> None:
        try:
            await client.xgroup_create(STREAM, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _run(self) -> None:
        assert self.client is not None
        client = self.client
        ready = False
        cursor = "0"  # first our own pending entries (not acknowledged before a restart), then new ones
        since_claim = 0
        while True:
            if cancel_requested():  # a cancellation the Redis client swallowed (wire.tasks)
                raise asyncio.CancelledError
            try:
                if not ready:
                    await self._ensure_group(client)
                    ready = True
                resp: Any = await client.xreadgroup(
                    self.group,
                    self.consumer,
                    {STREAM: cursor},
                    count=self.batch,
                    block=None if cursor == "0" else self.block_ms,
                )
                entries = _entries(resp)
                if cursor == "0" and not entries:
                    cursor = ">"
                    continue
                if entries:
                    await self._commit(client, entries)
                since_claim += 1
                if since_claim >= 20:
                    since_claim = 0
                    await self._claim(client)
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as exc:
                if self.last_error != str(exc):
                    log.warning("capture sink: Redis error (will retry): %s", exc)
                self.last_error = str(exc)
                ready = False
                cursor = "0"
                await asyncio.sleep(1.0)

    async def _commit(self, client: aioredis.Redis, entries: list[Any]) -> None:
        rows: list[tuple[Any, ...]] = []
        ids: list[Any] = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            raw = fields.get(b"row") if fields else None
            if raw is None:
                continue
            try:
                rows.append(tuple(orjson.loads(raw)))
            except orjson.JSONDecodeError:
                log.error("capture sink: dropping a malformed stream entry %r", entry_id)
        if rows:
            await asyncio.to_thread(self.store.write_traces, rows)
            self.drained += len(rows)
        await client.xack(STREAM, self.group, *ids)

    async def _claim(self, client: aioredis.Redis) -> None:
        """Take over entries another consumer of the group read but never acknowledged (it died)."""
        resp = await client.xautoclaim(
            STREAM, self.group, self.consumer, self.claim_idle_ms, "0-0", count=self.batch
        )
        entries = resp[1] if resp and len(resp) > 1 else []
        if entries:
            log.info("capture sink: claimed %d entries of a stalled consumer", len(entries))
            await self._commit(client, [e for e in entries if e and e[1] is not None])

    async def lag(self) -> int:
        """Entries not yet delivered to the group plus delivered but unacknowledged ones."""
        assert self.client is not None
        for g in await self.client.xinfo_groups(STREAM):
            name = g.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                return int(g.get("lag") or 0) + int(g.get("pending") or 0)
        return 0

    async def settle(self, wait_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            try:
                if await self.lag() == 0:
                    return True
            except redis.RedisError:
                pass
            await asyncio.sleep(0.05)
        return False


def _entries(resp: Any) -> list[Any]:
    """The entries of an ``XREADGROUP`` reply for our one stream (RESP2 list or RESP3 mapping)."""
    if not resp:
        return []
    if isinstance(resp, dict):
        return list(next(iter(resp.values()), []) or [])
    return list(resp[0][1])
