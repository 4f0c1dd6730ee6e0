"""The routing policy in Redis, shared by every replica.

Keys (prefix ``pointsman:policy:``): ``head`` (newest version number), ``v:<n>`` (a hash: created_at, source,
summary, doc), ``config_hash`` (hash of the last imported config file policy), ``revoked`` (a hash: SHA-256
digest of a revoked client key secret -> JSON ``{name, version, revoked_at}``). Appends run as one Lua script
(compare the head, write the version and the secrets it revokes, move the head, publish), so concurrent writers
on different replicas never both get the same number. Every append publishes the new number on
``pointsman:policy:changed``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from routing.store import PolicyVersion, Revocation, Revoke, StoreUnavailable, VersionConflict, dumps

PREFIX = "pointsman:policy:"
CHANNEL = "pointsman:policy:changed"

# KEYS: head, version-key prefix, config_hash, revoked. ARGV: expect ('' = any), created_at, source, summary, doc,
# config_hash ('' = not a seed), channel, then (digest, key name) pairs of the secrets this version revokes.
_APPEND = """
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] ~= '' and head ~= tonumber(ARGV[1]) then return {0, head} end
if ARGV[6] ~= '' and head > 0 and redis.call('GET', KEYS[3]) == ARGV[6] then return {2, head} end
local v = head + 1
redis.call('HSET', KEYS[2] .. v, 'created_at', ARGV[2], 'source', ARGV[3], 'summary', ARGV[4], 'doc', ARGV[5])
redis.call('SET', KEYS[1], v)
for i = 8, #ARGV, 2 do
  redis.call('HSETNX', KEYS[4], ARGV[i],
    cjson.encode({name = ARGV[i + 1], version = v, revoked_at = tonumber(ARGV[2])}))
end
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6]) end
redis.call('PUBLISH', ARGV[7], v)
return {1, v}
"""


def _version(v: int, h: Any) -> PolicyVersion | None:
    if not h:
        return None
    return PolicyVersion(v, float(h["created_at"]), h["source"], h["summary"], orjson.loads(h["doc"]))


class RedisPolicyStore:
    def __init__(self, url: str, prefix: str = PREFIX, channel: str = CHANNEL) -> None:
        self.url = url
        self.prefix = prefix
        self.channel = channel
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._script: Any = None

    async def open(self) -> None:
        try:
            client = aioredis.from_url(
                self.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
            )
            await client.ping()
            self._client = client
            self._script = client.register_script(_APPEND)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(self.channel)
            self._pubsub = pubsub
        except (RedisError, OSError) as exc:
            await self.close()
            raise StoreUnavailable(f"redis is unreachable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        client, self._client = self._client, None
        try:
            if pubsub is not None:
                await pubsub.aclose()
        finally:
            if client is not None:
                await client.aclose()

    def _c(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreUnavailable("the policy store is not open")
        return self._client

    async def head(self) -> int:
        try:
            return int(await self._c().get(self.prefix + "head") or 0)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis is unreachable") from exc

    async def get(self, version: int) -> PolicyVersion | None:
        try:
            h = await self._c().hgetall(f"{self.prefix}v:{version}")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis is unreachable") from exc
        return _version(version, h)

    async def latest(self) -> PolicyVersion | None:
        head = await self.head()
        return await self.get(head) if head else None

    async def history(self, limit: int) -> list[PolicyVersion]:
        head = await self.head()
        versions = list(range(head, max(0, head - limit), -1))
        if not versions:
            return []
        try:
            pipe = self._c().pipeline(transaction=False)
            for v in versions:
                pipe.hgetall(f"{self.prefix}v:{v}")
            rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis is unreachable") from exc
        return [pv for v, h in zip(versions, rows, strict=True) if (pv := _version(v, h)) is not None]

    async def revocations(self) -> dict[str, Revocation]:
        try:
            rows = await self._c().hgetall(self.prefix + "revoked")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis is unreachable") from exc
        out: dict[str, Revocation] = {}
        for field, raw in rows.items():
            digest, r = str(field), orjson.loads(raw)
            out[digest] = Revocation(digest, str(r["name"]), int(r["version"]), float(r["revoked_at"]))
        return out

    async def _run(
        self,
        doc: dict[str, Any],
        source: str,
        summary: str,
        expect: int | None,
        config_hash: str,
        revoke: Revoke | None = None,
    ) -> PolicyVersion:
        now = time.time()
        keys = [
            self.prefix + "head",
            self.prefix + "v:",
            self.prefix + "config_hash",
            self.prefix + "revoked",
        ]
        args = [
            "" if expect is None else str(expect),
            repr(now),
            source,
            summary,
            dumps(doc),
            config_hash,
            self.channel,
        ]
        for digest, name in sorted((revoke or {}).items()):
            args += [digest, name]
        try:
            status, v = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis is unreachable") from exc
        if status == 0:
            raise VersionConflict(int(v))
        if status == 2:
            latest = await self.get(int(v))
            if latest is None:
                raise VersionConflict(int(v))
            return latest
        return PolicyVersion(int(v), now, source, summary, doc)

    async def append(
        self, doc: dict[str, Any], source: str, summary: str, expect: int, revoke: Revoke | None = None
    ) -> PolicyVersion:
        return await self._run(doc, source, summary, expect, "", revoke)

    async def seed(
        self, doc: dict[str, Any], config_hash: str, summary: str, revoke: Revoke | None = None
    ) -> PolicyVersion:
        return await self._run(doc, "config", summary, None, config_hash, revoke)

    async def wait_change(self, wait_s: float) -> None:
        if self._pubsub is None:
            raise StoreUnavailable("the policy store is not open")
        try:
            # Any message (or the timeout) sends the caller to compare versions; drain what else queued up.
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_s)
            while msg is not None:
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis is unreachable") from exc
