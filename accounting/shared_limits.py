"""What limits and budgets keep in Redis, shared by every replica: the Lua scripts that decide admission, push
spend, renew and re-seed, the keys they use, and ``RedisHealth`` (whether Redis answers, per component).

``accounting.limits`` runs these scripts through the request path's client (``accounting.resp``); the shared ledger
uses ``RedisHealth`` too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from accounting.metrics import Metrics
from accounting.resp import RespClient

log = logging.getLogger("pointsman.limits")

T = TypeVar("T")
PREFIX = "pointsman:"
BUDGET_TTL = {"daily": 3 * 86400, "monthly": 40 * 86400}
"""How long a budget bucket's counters live in Redis after their last write (beyond their period)."""


# Admission, atomically. KEYS: rpm cur, rpm prev, tpm cur, tpm prev, then per budget its spend counter, its
# reservations (a sorted set: member "<id>:<nano-USD>", score its expiry in ms) and their sum.
# ARGV: fraction of the current minute elapsed, rpm limit (0 = none), tpm limit (0 = none), window TTL, (unused),
# the reservation's lifetime (ms), the requests wanted from the rpm limit (1, or a grant: ``accounting.leases``),
# then per budget: limit (nano-USD), this request's reservation (nano-USD), the amount wanted (the reservation,
# or a lease), the bucket's TTL, the member id. A grant or lease takes at most 1/16 of what is left, never less
# than the request's own need. Expired reservations (of a replica that died holding them) are dropped first.
# Returns {verdict, index, requests granted, tokens used, then per budget: spent, reserved, granted}: verdict
# 0 ok (reservations held), 1 rpm, 2 budget, 3 tpm.
ADMIT_LUA = """
local frac = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb = (#KEYS - 4) / 3
local out = {0, 0, 0, '0'}
local grant = {}
for i = 1, nb do
  local sk, zk, hk = KEYS[3 * i + 2], KEYS[3 * i + 3], KEYS[3 * i + 4]
  local a = 3 + 5 * i
  local gone = redis.call('ZRANGEBYSCORE', zk, '-inf', now)
  if #gone > 0 then
    local freed = 0
    for _, m in ipairs(gone) do freed = freed + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', zk, '-inf', now)
    redis.call('DECRBY', hk, freed)
  end
  local r = 0
  if redis.call('ZCARD', zk) == 0 then redis.call('DEL', hk) else r = tonumber(redis.call('GET', hk) or '0') end
  local s = tonumber(redis.call('GET', sk) or '0')
  out[#out + 1] = tostring(s)
  out[#out + 1] = tostring(r)
  local limit = tonumber(ARGV[a])
  local ask = tonumber(ARGV[a + 1])
  if s >= limit or s + r + ask > limit then
    out[1] = 2
    out[2] = i
    return out
  end
  local g = math.min(tonumber(ARGV[a + 2]), math.floor((limit - s - r) / 16))
  if g <= ask then grant[i] = ARGV[a + 1] else grant[i] = string.format('%d', g) end
  out[#out + 1] = grant[i]
end
if tpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(redis.call('GET', KEYS[4]) or '0') * (1 - frac)
  if used >= tpm then return {3, 0} end
  out[4] = tostring(used)
end
if rpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(redis.call('GET', KEYS[2]) or '0') * (1 - frac)
  if used + 1 > rpm then return {1, 0} end
  local g = math.min(tonumber(ARGV[7]), math.floor((rpm - used) / 16))
  if g < 1 then g = 1 end
  redis.call('INCRBY', KEYS[1], g)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
  out[3] = g
end
for i = 1, nb do
  local amount = grant[i]
  if tonumber(amount) > 0 then
    local a = 3 + 5 * i
    local zk, hk, ttl = KEYS[3 * i + 3], KEYS[3 * i + 4], tonumber(ARGV[a + 3])
    redis.call('ZADD', zk, now + tonumber(ARGV[6]), ARGV[a + 4] .. ':' .. amount)
    redis.call('INCRBY', hk, amount)
    redis.call('EXPIRE', zk, ttl)
    redis.call('EXPIRE', hk, ttl)
  end
end
return out
"""

# Reservations still held are kept alive by their replica. KEYS: a reservation set per member; ARGV: the new
# lifetime (ms), then the members. Members already expired (and dropped) are not brought back.
RENEW_LUA = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], 'XX', until_ms, ARGV[i + 1]) end
return #KEYS
"""


# Redis came back without its data (no persistence, a flush, a failover to an empty replica) when the marker
# key is gone. Then every budget counter is raised to at least what this replica's ledger knows was spent (a
# max, so nothing is counted twice) and the marker is set again. KEYS: marker, then one spend key per budget
# bucket; ARGV: one amount (nano-USD) per spend key, then one TTL per spend key. Returns how many it raised.
RESEED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = #KEYS - 1
local raised = 0
for i = 2, #KEYS do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tonumber(ARGV[i - 1]) > cur then
    redis.call('SET', KEYS[i], ARGV[i - 1], 'EX', tonumber(ARGV[n + i - 1]))
    raised = raised + 1
  end
end
redis.call('SET', KEYS[1], '1')
return raised
"""
MARKER = PREFIX + "limits:seeded"

# Spend and token counts pushed after requests, and the reservations of those requests released, idempotently.
# KEYS: the batch id, one counter per amount, then a (reservation set, reserved sum) pair per released
# reservation; ARGV: the id's TTL, the number of counters, the amounts, one TTL per counter, then the released
# members ("<id>:<nano-USD>"). A batch already applied (its id is set) is skipped; a member already expired is
# not subtracted twice.
PUSH_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
local n = tonumber(ARGV[2])
for i = 1, n do
  redis.call('INCRBY', KEYS[i + 1], ARGV[i + 2])
  redis.call('EXPIRE', KEYS[i + 1], tonumber(ARGV[n + i + 2]))
end
local j = 2 * n + 3
for i = n + 2, #KEYS, 2 do
  local m = ARGV[j]
  if redis.call('ZREM', KEYS[i], m) == 1 then
    redis.call('DECRBY', KEYS[i + 1], string.match(m, ':(%d+)$'))
  end
  j = j + 1
end
return 1
"""
PUSH_ID_TTL = 86400


def budget_keys(bucket: tuple[str, str, str]) -> tuple[str, str, str]:
    """A budget bucket's Redis keys: its spend counter, its reservations (sorted by expiry) and their sum."""
    scope, name, b = bucket
    tail = f"{scope}:{name}:{b}"
    return f"{PREFIX}spend:{tail}", f"{PREFIX}reservations:{tail}", f"{PREFIX}reserved:{tail}"


def spend_key(bucket: tuple[str, str, str]) -> str:
    """A budget bucket's spend counter (``budget_keys``' first)."""
    return budget_keys(bucket)[0]


def rate_key(key: str, kind: str, minute: int) -> str:
    """A client key's counter of requests (``kind`` ``r``) or tokens (``t``) in a minute."""
    return f"{PREFIX}rl:{key}:{kind}:{minute}"


class RedisHealth:
    """Tracks whether Redis answers, per component; logs and meters transitions; probes while down."""

    def __init__(self, client: RespClient, metrics: Metrics, policy: str) -> None:
        self.client = client
        self.metrics = metrics
        self.policy = policy
        self.up: dict[str, bool] = {}
        self._probe: asyncio.Task[None] | None = None
        self.on_up: list[Callable[[str], None]] = []

    def mark(self, component: str, up: bool, err: BaseException | None = None) -> None:
        was = self.up.get(component)
        self.up[component] = up
        self.metrics.redis_up.labels(component).set(1 if up else 0)
        if was is up:
            return
        if up:
            if was is False:
                log.warning("redis reachable again for %s; shared %s restored", component, component)
                for cb in self.on_up:
                    cb(component)
        else:
            log.error(
                "redis unreachable for %s (%s: %s); policy %s: %s",
                component,
                type(err).__name__ if err else "",
                err,
                self.policy,
                "deciding with local state"
                if self.policy == "fail_open"
                else "refusing requests that need it",
            )
            if self._probe is None or self._probe.done():
                self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    def is_up(self, component: str) -> bool:
        return self.up.get(component, True)

    async def _probe_loop(self) -> None:
        while not all(self.up.values()):
            await asyncio.sleep(0.5)
            try:
                await self.client.ping()
            except Exception:
                continue
            for c, ok in list(self.up.items()):
                if not ok:
                    self.mark(c, True)

    async def call(self, component: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        """Run a Redis call; None (and the component marked down) when Redis is unreachable."""
        if not self.is_up(component):
            return None
        try:
            res = await fn()
        except Exception as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.mark(component, False, exc)
            return None
        if self.up.get(component) is None:
            self.mark(component, True)
        return res

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
