"""Admission control: per key/team budgets (USD per UTC day and month) and per key rate limits (requests and
tokens per minute, sliding window).

Local state always exists (in-memory windows; budget spend from the ledger's per-bucket totals plus this
process's not-yet-written spend). With Redis, the decision is taken by one atomic Lua script against shared
counters, so all replicas enforce one limit; spend and token counts are added to Redis in the background
after each request. When Redis is unreachable the configured ``redis.on_unavailable`` policy applies:
``fail_open`` decides with the local state, ``fail_closed`` refuses (429 ``shared_state_unavailable``); both
say so in ``pointsman_shared_state_degraded_total``, ``pointsman_redis_up`` and the log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from accounting.config import AccountingConfig, RateLimitConfig
from accounting.errors import BudgetExceeded, RateLimited, SharedStateUnavailable
from accounting.ledger import from_nusd, to_nusd, usd
from accounting.metrics import Metrics

log = logging.getLogger("pointsman.limits")

T = TypeVar("T")
WINDOW_S = 60.0
PREFIX = "pointsman:"
COMPONENT = "limits"
_BUDGET_TTL = {"daily": 3 * 86400, "monthly": 40 * 86400}


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str
    name: str
    period: str
    """``daily`` or ``monthly``."""
    limit: Decimal
    limit_nusd: int
    soft: float


def buckets_at(ts: float) -> dict[str, str]:
    return {
        "daily": "d:" + time.strftime("%Y-%m-%d", time.gmtime(ts)),
        "monthly": "m:" + time.strftime("%Y-%m", time.gmtime(ts)),
    }


def seconds_to_reset(period: str, ts: float) -> int:
    g = time.gmtime(ts)
    if period == "daily":
        return max(1, 86400 - (g.tm_hour * 3600 + g.tm_min * 60 + g.tm_sec))
    y, m = (g.tm_year + 1, 1) if g.tm_mon == 12 else (g.tm_year, g.tm_mon + 1)
    nxt = time.mktime((y, m, 1, 0, 0, 0, 0, 0, 0)) - time.timezone
    return max(1, int(nxt - ts))


class Window:
    """Sliding one-minute window approximated by the current and previous fixed minutes (weighted)."""

    __slots__ = ("start", "cur", "prev")

    def __init__(self) -> None:
        self.start = 0.0
        self.cur = 0
        self.prev = 0

    def _roll(self, now: float) -> float:
        minute = now - (now % WINDOW_S)
        if minute != self.start:
            self.prev = self.cur if minute - self.start == WINDOW_S else 0
            self.cur = 0
            self.start = minute
        return (now - minute) / WINDOW_S

    def count(self, now: float) -> float:
        frac = self._roll(now)
        return self.cur + self.prev * (1 - frac)

    def add(self, now: float, n: int) -> None:
        self._roll(now)
        self.cur += n


# Admission, atomically. KEYS: rpm cur, rpm prev, tpm cur, tpm prev, then one spend key per budget.
# ARGV: fraction of the current minute elapsed, rpm limit (0 = none), tpm limit (0 = none), window TTL,
# then one limit (nano-USD) per budget. Returns {verdict, index, spent...}: verdict 0 ok, 1 rpm, 2 budget, 3 tpm.
ADMIT_LUA = """
local frac = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local spent = {}
for i = 5, #KEYS do
  local s = tonumber(redis.call('GET', KEYS[i]) or '0')
  spent[#spent + 1] = tostring(s)
  if s >= tonumber(ARGV[i]) then
    local out = {2, i - 4}
    for _, v in ipairs(spent) do out[#out + 1] = v end
    return out
  end
end
if tpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(redis.call('GET', KEYS[4]) or '0') * (1 - frac)
  if used >= tpm then return {3, 0} end
end
if rpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(redis.call('GET', KEYS[2]) or '0') * (1 - frac)
  if used + 1 > rpm then return {1, 0} end
  redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
local out = {0, 0}
for _, v in ipairs(spent) do out[#out + 1] = v end
return out
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

# Spend and token counts pushed after requests, idempotently. KEYS: the batch id, then one counter per amount;
# ARGV: the id's TTL, the amounts, then one TTL per counter. A batch already applied (its id is set) is skipped.
PUSH_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
local n = #KEYS - 1
for i = 2, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[i])
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[n + i]))
end
return 1
"""
_PUSH_ID_TTL = 86400


class RedisHealth:
    """Tracks whether Redis answers, per component; logs and meters transitions; probes while down."""

    def __init__(self, client: Any, metrics: Metrics, policy: str) -> None:
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


class Limits:
    def __init__(self, cfg: AccountingConfig, metrics: Metrics) -> None:
        self.metrics = metrics
        self.budgets: dict[tuple[str, str], list[Budget]] = {}
        self.rate: dict[str, RateLimitConfig] = {}
        self.default_rate: RateLimitConfig | None = None
        self.configure(cfg)
        self.windows: dict[tuple[str, str], Window] = {}
        # Local budget view: ledger totals (snapshot) + this process's spend not yet in the ledger (pending).
        self._lock = threading.Lock()
        self.snapshot: dict[tuple[str, str, str], int] = {}
        self.pending: dict[tuple[str, str, str], int] = {}
        self.generation = 0
        self._soft_warned: set[tuple[str, str, str]] = set()
        # Shared (Redis)
        self.redis: Any = None
        self.health: RedisHealth | None = None
        self.policy = "fail_open"
        self._admit_script: Any = None
        self._reseed_script: Any = None
        self._outbox: dict[str, int] = {}
        self._outbox_ttl: dict[str, int] = {}
        self._unsent: tuple[str, dict[str, int], dict[str, int]] | None = None
        self._push_script: Any = None
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False

    # -- config ----------------------------------------------------------------------------------------------
    def configure(self, cfg: AccountingConfig) -> None:
        budgets: dict[tuple[str, str], list[Budget]] = {}
        for b in cfg.budgets:
            lst = budgets.setdefault((b.scope, b.name), [])
            for period, amount in (("daily", b.daily_usd), ("monthly", b.monthly_usd)):
                if amount is not None:
                    lst.append(Budget(b.scope, b.name, period, amount, to_nusd(amount), b.soft_threshold))
        rate = {r.key: r for r in cfg.rate_limits}
        self.default_rate = rate.pop("*", None)
        self.rate = rate
        self.budgets = budgets

    @property
    def active(self) -> bool:
        return bool(self.budgets or self.rate or self.default_rate)

    def rate_for(self, key: str) -> RateLimitConfig | None:
        return self.rate.get(key, self.default_rate)

    def budget_list(self, key: str, team: str | None) -> list[Budget]:
        out = self.budgets.get(("key", key), [])
        if team is not None:
            tb = self.budgets.get(("team", team))
            if tb:
                out = out + tb
        return out

    def all_buckets(self, ts: float) -> list[tuple[str, str, str]]:
        b = buckets_at(ts)
        return [(x.scope, x.name, b[x.period]) for lst in self.budgets.values() for x in lst]

    def use_redis(self, client: Any, policy: str, health: RedisHealth) -> None:
        self.redis = client
        self.policy = policy
        self.health = health
        self._admit_script = client.register_script(ADMIT_LUA)
        self._reseed_script = client.register_script(RESEED_LUA)
        self._push_script = client.register_script(PUSH_LUA)
        health.on_up.append(self._redis_back)

    async def start(self) -> None:
        self._wake = asyncio.Event()
        if self.redis is not None and self.active:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def close(self) -> None:
        self._closing = True
        if self._flusher is not None:
            assert self._wake is not None
            self._wake.set()
            try:
                await asyncio.wait_for(self._flusher, 5)
            except (TimeoutError, asyncio.CancelledError):
                pass

    # -- admission (request path) -----------------------------------------------------------------------
    async def admit(self, key: str, team: str | None) -> None:
        rl = self.rate_for(key)
        budgets = self.budget_list(key, team)
        if rl is None and not budgets:
            return
        now = time.time()
        if self.redis is not None:
            assert self.health is not None
            res = await self.health.call(COMPONENT, lambda: self._admit_redis(key, rl, budgets, now))
            if res is not None:
                self._local_rpm(key, rl, now)  # keep the local window warm for a fallback
                return self._verdict(res, key, rl, budgets, now)
            self.metrics.shared_state_degraded.labels(COMPONENT, self.policy).inc()
            if self.policy == "fail_closed":
                raise SharedStateUnavailable()
        self._admit_local(key, rl, budgets, now)

    def _local_rpm(self, key: str, rl: RateLimitConfig | None, now: float) -> None:
        if rl is not None and rl.requests_per_min:
            self._window(key, "rpm").add(now, 1)

    def _window(self, key: str, kind: str) -> Window:
        w = self.windows.get((key, kind))
        if w is None:
            w = self.windows[(key, kind)] = Window()
        return w

    def _admit_local(self, key: str, rl: RateLimitConfig | None, budgets: list[Budget], now: float) -> None:
        if budgets:
            b = buckets_at(now)
            with self._lock:
                spent = [
                    self.snapshot.get((x.scope, x.name, b[x.period]), 0)
                    + self.pending.get((x.scope, x.name, b[x.period]), 0)
                    for x in budgets
                ]
            for x, s in zip(budgets, spent, strict=True):
                self.observe_budget(x, s, b[x.period])
                if s >= x.limit_nusd:
                    self._refuse_budget(x, s, now)
        if rl is not None:
            if rl.tokens_per_min and self._window(key, "tpm").count(now) >= rl.tokens_per_min:
                self._refuse_rate(key, "tpm", rl.tokens_per_min, now)
            if rl.requests_per_min:
                w = self._window(key, "rpm")
                if w.count(now) + 1 > rl.requests_per_min:
                    self._refuse_rate(key, "rpm", rl.requests_per_min, now)
                w.add(now, 1)

    def _keys(self, key: str, rl: RateLimitConfig | None, budgets: list[Budget], now: float) -> list[str]:
        minute = int(now // WINDOW_S)
        k = [
            f"{PREFIX}rl:{key}:r:{minute}",
            f"{PREFIX}rl:{key}:r:{minute - 1}",
            f"{PREFIX}rl:{key}:t:{minute}",
            f"{PREFIX}rl:{key}:t:{minute - 1}",
        ]
        b = buckets_at(now)
        k.extend(f"{PREFIX}spend:{x.scope}:{x.name}:{b[x.period]}" for x in budgets)
        return k

    async def _admit_redis(
        self, key: str, rl: RateLimitConfig | None, budgets: list[Budget], now: float
    ) -> Any:
        frac = (now % WINDOW_S) / WINDOW_S
        args: list[Any] = [
            repr(frac),
            (rl.requests_per_min or 0) if rl else 0,
            (rl.tokens_per_min or 0) if rl else 0,
            int(WINDOW_S * 2 + 5),
        ]
        args.extend(x.limit_nusd for x in budgets)
        return await self._admit_script(keys=self._keys(key, rl, budgets, now), args=args)

    def _verdict(
        self, res: Any, key: str, rl: RateLimitConfig | None, budgets: list[Budget], now: float
    ) -> None:
        verdict, idx = int(res[0]), int(res[1])
        spent = [int(float(v)) for v in res[2:]]
        b = buckets_at(now)
        for x, s in zip(budgets, spent, strict=False):
            self.observe_budget(x, s, b[x.period])
        if verdict == 2:
            self._refuse_budget(budgets[idx - 1], spent[idx - 1], now)
        elif verdict == 3:
            assert rl is not None and rl.tokens_per_min
            self._refuse_rate(key, "tpm", rl.tokens_per_min, now)
        elif verdict == 1:
            assert rl is not None and rl.requests_per_min
            self._refuse_rate(key, "rpm", rl.requests_per_min, now)

    def observe_budget(self, x: Budget, spent_nusd: int, bucket: str) -> None:
        remaining = max(x.limit_nusd - spent_nusd, 0)
        self.metrics.budget_remaining.labels(x.scope, x.name, x.period).set(float(from_nusd(remaining)))
        if spent_nusd >= x.soft * x.limit_nusd:
            mark = (x.scope, x.name, bucket)
            if mark not in self._soft_warned:
                self._soft_warned.add(mark)
                log.warning(
                    "budget soft threshold: %s %r has spent $%s of its %s budget $%s (%.0f%%)",
                    x.scope,
                    x.name,
                    usd(from_nusd(spent_nusd)),
                    x.period,
                    usd(x.limit),
                    100 * spent_nusd / max(x.limit_nusd, 1),
                )

    def _refuse_budget(self, x: Budget, spent_nusd: int, now: float) -> None:
        self.metrics.budget_exceeded.labels(x.scope, x.name, x.period).inc()
        raise BudgetExceeded(
            x.scope,
            x.name,
            x.period,
            usd(x.limit),
            usd(from_nusd(spent_nusd)),
            seconds_to_reset(x.period, now),
        )

    def _refuse_rate(self, key: str, limit: str, allowed: int, now: float) -> None:
        self.metrics.rate_limited.labels(self.metrics.labels.key(key), limit).inc()
        retry = max(1, int(WINDOW_S - (now % WINDOW_S)))
        raise RateLimited(key, limit, allowed, retry)

    # -- after the request (event loop, non-blocking) -------------------------------------------------------------
    def commit(self, key: str, team: str | None, ts: float, nusd: int, tokens: int) -> None:
        rl = self.rate_for(key)
        budgets = self.budget_list(key, team)
        if rl is None and not budgets:
            return
        now = time.time()
        if rl is not None and rl.tokens_per_min and tokens:
            self._window(key, "tpm").add(now, tokens)
        if budgets and nusd:
            b = buckets_at(ts)
            with self._lock:
                for x in budgets:
                    k = (x.scope, x.name, b[x.period])
                    self.pending[k] = self.pending.get(k, 0) + nusd
        if self.redis is None:
            return
        if rl is not None and rl.tokens_per_min and tokens:
            rk = f"{PREFIX}rl:{key}:t:{int(now // WINDOW_S)}"
            self._outbox[rk] = self._outbox.get(rk, 0) + tokens
            self._outbox_ttl[rk] = int(WINDOW_S * 2 + 5)
        if budgets and nusd:
            b = buckets_at(ts)
            for x in budgets:
                rk = f"{PREFIX}spend:{x.scope}:{x.name}:{b[x.period]}"
                self._outbox[rk] = self._outbox.get(rk, 0) + nusd
                self._outbox_ttl[rk] = _BUDGET_TTL[x.period]
        if self._wake is not None:
            self._wake.set()

    async def _flush_loop(self) -> None:
        assert self._wake is not None and self.health is not None
        while True:
            try:
                await asyncio.wait_for(
                    self._wake.wait(), 1.0
                )  # at least every second: check for a lost Redis
            except TimeoutError:
                pass
            self._wake.clear()
            if self._unsent is None and self._outbox:
                self._unsent = (uuid.uuid4().hex, self._outbox, self._outbox_ttl)
                self._outbox, self._outbox_ttl = {}, {}
            if self._unsent is not None and self.health.is_up(COMPONENT):
                # A batch is applied at most once: a push that timed out may still have reached Redis (it was
                # only slow, or frozen), so it is retried under the same id, which the script remembers.
                if await self.health.call(COMPONENT, self._push) is not None:
                    self._unsent = None
                    if self._outbox:
                        self._wake.set()
            if self.budgets and self._unsent is None and not self._outbox and self.health.is_up(COMPONENT):
                await self.health.call(COMPONENT, self._reseed)  # after the pushes: never counts a push twice
            if self._closing:
                return

    async def _push(self) -> bool:
        assert self._unsent is not None
        batch, out, ttl = self._unsent
        keys = [f"{PREFIX}push:{batch}", *out]
        await self._push_script(keys=keys, args=[_PUSH_ID_TTL, *out.values(), *(ttl[k] for k in out)])
        return True

    async def _reseed(self) -> bool:
        """If Redis lost its data, raise the shared budget counters to this replica's ledger totals."""
        with self._lock:
            totals = {k: self.snapshot.get(k, 0) for k in self.all_buckets(time.time())}
        keys = [MARKER] + [f"{PREFIX}spend:{scope}:{name}:{bucket}" for scope, name, bucket in totals]
        ttls = [_BUDGET_TTL["daily" if bucket.startswith("d:") else "monthly"] for _, _, bucket in totals]
        raised = await self._reseed_script(keys=keys, args=[*totals.values(), *ttls])
        if raised:
            log.warning("redis had lost the shared budget counters; restored %d from the ledger", raised)
        return True

    def _redis_back(self, component: str) -> None:
        if component == COMPONENT and self._wake is not None and (self._outbox or self._unsent is not None):
            self._wake.set()

    # -- ledger feedback (writer thread / refresh) ---------------------------------------------------------------
    def budget_keys(self) -> list[tuple[str, str, str]]:
        return self.all_buckets(time.time())

    def ledger_committed(
        self, deltas: dict[tuple[str, str, str], list[int]], fresh: dict[tuple[str, str, str], int]
    ) -> None:
        """Own rows reached the ledger: move their amounts from pending into the snapshot."""
        with self._lock:
            for k, (nusd, _n) in deltas.items():
                if k in self.pending:
                    left = self.pending[k] - nusd
                    if left > 0:
                        self.pending[k] = left
                    else:
                        del self.pending[k]
            self.snapshot.update(fresh)
            self.generation += 1

    def refresh(self, generation: int, fresh: dict[tuple[str, str, str], int]) -> None:
        """Totals read from the ledger (other workers' spend too), applied unless a commit raced the read."""
        with self._lock:
            if generation == self.generation:
                self.snapshot.update(fresh)
                self.generation += 1
