"""Admission control: per key/team budgets (USD per UTC day and month) and per key rate limits (requests and
tokens per minute, sliding window).

Local state always exists (in-memory windows; budget spend from the ledger's per-bucket totals plus this
process's not-yet-written spend, and the reservations of its requests in flight). With Redis, the decision is
taken by one atomic Lua script against shared counters, so all replicas enforce one limit; spend and token
counts are added to Redis in the background after each request (``accounting.limits_outbox``); a hot key's
limits are taken in slices (``accounting.leases``).

Budgets are admitted against reservations (``accounting.reservation``): a request is admitted only when each
budget's spend + reserved + its own reservation fits in the budget, and the same step holds its reservation
(one script with Redis: a sorted set of reservations by expiry and their sum, per budget bucket). The
reservation is released in the same step that adds the request's actual cost (locally under one lock; in Redis
by the idempotent push that adds the spend), so no moment counts neither. Redis reservations expire unless
their replica renews them (``accounting.reservations.ttl_s``): a dead replica's are freed within ``ttl_s``.

When Redis is unreachable the configured ``redis.on_unavailable`` policy applies:
``fail_open`` decides with the local state, ``fail_closed`` refuses (429 ``shared_state_unavailable``); both
say so in ``pointsman_shared_state_degraded_total``, ``pointsman_redis_up`` and the log.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from accounting.budgets import Budget, budgets_of
from accounting.config import AccountingConfig, RateLimitConfig
from accounting.errors import SharedStateUnavailable
from accounting.leases import HEADROOM_SHARE, MAX_AGE_S, Bucket, Grant, Lease, LeaseBook, TokensSeen
from accounting.limit_signals import LimitSignals
from accounting.limits_outbox import COMPONENT, Outbox
from accounting.metrics import Metrics
from accounting.periods import WINDOW_S, Window, buckets_at
from accounting.reservation import Reservation
from accounting.resp import RespClient, Script
from accounting.shared_limits import (
    ADMIT_LUA,
    BUDGET_TTL,
    RedisHealth,
    budget_keys,
    rate_key,
    spend_key,
)

log = logging.getLogger("pointsman.limits")


_RID_PREFIX = uuid.uuid4().hex[:16]
"""Reservation ids: this process's random prefix and a counter (unique across replicas; no ``os.urandom`` per
request, which releases the GIL on the event loop's thread)."""
_rid_counter = itertools.count()
_MISS = Reservation("", [], False)
"""``_admit_leased``: the grant and leases held do not cover the request."""
_DAY_S = 86400
_RATE_TTL = int(WINDOW_S * 2 + 5)
"""Seconds a per-minute rate counter lives in Redis (its minute and the next, which weighs it, and a margin)."""


class Plan:
    """What admission and commit look up for one (key, team) on one UTC day, looked up once: its rate limit, its
    budgets with their buckets of that day, the Redis counters their spend is pushed to, and its minute windows.
    Made again on the next day and after a config change (``configure``)."""

    __slots__ = (
        "key",
        "rl",
        "budgets",
        "day",
        "buckets",
        "spend_keys",
        "ttls",
        "rpm",
        "tpm",
        "tpm_ceiling",
        "tpm_minute",
        "tpm_name",
    )

    def __init__(self, limits: Limits, key: str, team: str | None, day: int) -> None:
        self.key = key
        self.rl = rl = limits.rate_for(key)
        budgets = limits.budgets.get(("key", key), [])
        if team is not None:
            tb = limits.budgets.get(("team", team))
            if tb:
                budgets = budgets + tb
        self.budgets = budgets
        """The budgets covering the key and its team (callers must not change the list)."""
        self.day = day
        b = buckets_at(day * _DAY_S)
        self.buckets: list[Bucket] = [(x.scope, x.name, b[x.period]) for x in budgets]
        self.spend_keys = [spend_key(k) for k in self.buckets]
        """Redis counter of each budget's spend in its bucket."""
        self.ttls = [BUDGET_TTL[x.period] for x in budgets]
        self.rpm = limits._window(key, "rpm") if rl is not None and rl.requests_per_min else None
        self.tpm = limits._window(key, "tpm") if rl is not None and rl.tokens_per_min else None
        self.tpm_ceiling = (
            rl.tokens_per_min * (1 - 1 / HEADROOM_SHARE) if rl is not None and rl.tokens_per_min else 0
        )
        """Tokens in the key's minute past which its admissions stop drawing from leases (0: no such limit)."""
        self.tpm_minute = -1
        self.tpm_name = ""
        """The Redis counter of the key's tokens in ``tpm_minute``."""

    def tpm_counter(self, minute: int) -> str:
        """The Redis counter of the key's tokens in ``minute`` (named once a minute)."""
        if minute != self.tpm_minute:
            self.tpm_name = rate_key(self.key, "t", minute)
            self.tpm_minute = minute
        return self.tpm_name


class Limits:
    def __init__(self, cfg: AccountingConfig, metrics: Metrics) -> None:
        self.metrics = metrics
        self.budgets: dict[tuple[str, str], list[Budget]] = {}
        self.rate: dict[str, RateLimitConfig] = {}
        self.default_rate: RateLimitConfig | None = None
        self.book = LeaseBook()
        """Grants and leases of hot keys' shared limits (``accounting.leases``)."""
        self.windows: dict[tuple[str, str], Window] = {}
        self.leased = 0
        """Admissions taken from grants and leases, without a round trip (since start)."""
        self.configure(cfg)
        self._flushing = False
        """The outbox's loop runs (started by the first limited admission)."""
        # Local budget view: ledger totals (snapshot) + this process's spend not yet in the ledger (pending).
        self._lock = threading.Lock()
        self.snapshot: dict[tuple[str, str, str], int] = {}
        self.pending: dict[tuple[str, str, str], int] = {}
        self.reserved: dict[tuple[str, str, str], int] = {}
        """This process's reservations in flight per budget bucket (with Redis too: the fallback's view)."""
        self.reservation_ttl_s = cfg.reservations.ttl_s
        self.generation = 0
        self.signals = LimitSignals(metrics, self.reserved)
        """Its gauges, warnings and refusals (``accounting.limit_signals``)."""
        # Shared (Redis)
        self.redis: RespClient | None = None
        self.health: RedisHealth | None = None
        self.policy = "fail_open"
        self._admit_script: Script | None = None
        self.outbox: Outbox | None = None
        """What this replica owes Redis (spend, tokens, releases) and the loop that pushes it."""

    # -- config ----------------------------------------------------------------------------------------------
    def configure(self, cfg: AccountingConfig) -> None:
        budgets = budgets_of(cfg)
        rate = {r.key: r for r in cfg.rate_limits}
        self.default_rate = rate.pop("*", None)
        self.rate = rate
        self.budgets = budgets
        self.active = bool(budgets or rate or self.default_rate)
        """Something is limited: a budget or a rate limit (a plain attribute, read on every request)."""
        self._plans: dict[tuple[str, str | None], Plan] = {}
        """Per (key, team): what its admissions and commits look up (``Plan``), made anew after a change."""
        self.reservation_ttl_s = cfg.reservations.ttl_s
        self.book.retire_all()  # limits that changed are asked for again

    def rate_for(self, key: str) -> RateLimitConfig | None:
        return self.rate.get(key, self.default_rate)

    def plan(self, key: str, team: str | None) -> Plan:
        """What limits ``key`` and its ``team`` today: ``.budgets``, the budgets covering them (the caller must not
        change the list), and what ``admit`` looks up (hand it back there)."""
        return self._plan(key, team, time.time())

    def _plan(self, key: str, team: str | None, ts: float) -> Plan:
        """``key`` and ``team``'s limits and budgets, with the budgets' buckets of ``ts``'s UTC day."""
        day = int(ts // _DAY_S)
        plan = self._plans.get((key, team))
        if plan is None or plan.day != day:
            if len(self._plans) >= 4096:
                self._plans.clear()
            plan = self._plans[(key, team)] = Plan(self, key, team, day)
        return plan

    def all_buckets(self, ts: float) -> list[tuple[str, str, str]]:
        b = buckets_at(ts)
        return [(x.scope, x.name, b[x.period]) for lst in self.budgets.values() for x in lst]

    def use_redis(self, client: RespClient, policy: str, health: RedisHealth) -> None:
        self.redis = client
        self.policy = policy
        self.health = health
        self._admit_script = client.script(ADMIT_LUA)
        self.outbox = Outbox(client, health, self.book, lambda: self.reservation_ttl_s, self._ledger_totals)

    async def start(self) -> None:
        if self.outbox is not None:
            self.outbox.start()
            self._ensure_flusher()

    def _ensure_flusher(self) -> None:
        """The background pusher runs while Redis is configured and something is limited (also once a config
        swap brings the first budget or limit)."""
        if self.outbox is not None and self.active:
            self._flushing = self.outbox.run()

    def _ledger_totals(self) -> dict[tuple[str, str, str], int]:
        """This replica's ledger totals of the current budget buckets (the outbox re-seeds Redis with them)."""
        with self._lock:
            return {k: self.snapshot.get(k, 0) for k in self.all_buckets(time.time())}

    async def close(self) -> None:
        self.book.retire_all()  # the last push releases the leases held
        if self.outbox is not None:
            await self.outbox.close()

    # -- admission (request path) -----------------------------------------------------------------------
    async def admit(
        self, key: str, team: str | None, amounts: Sequence[int] = (), plan: Plan | None = None
    ) -> Reservation | None:
        """Admit a request or raise (``BudgetExceeded``, ``RateLimited``, ``SharedStateUnavailable``).
        ``amounts``: its reservation (nano-USD) against each of ``plan(key, team).budgets``, in that order;
        missing ones are 0. ``plan``: that plan, when the caller has it (looked up again on another day). Returns
        the reservation held, None when nothing is held."""
        now = time.time()
        if plan is None or plan.day != int(now // _DAY_S):
            plan = self._plan(key, team, now)
        rl, budgets = plan.rl, plan.budgets
        if rl is None and not budgets:
            return None
        n = len(budgets)
        asked = (
            list(amounts) if len(amounts) == n else [amounts[i] if i < len(amounts) else 0 for i in range(n)]
        )
        rid = ""  # made when the reservation needs one of its own (not when drawn from leases)
        if self.redis is not None:
            assert self.health is not None
            if not self._flushing:
                self._ensure_flusher()
            rate = self.book.hot(key, now) if self.health.is_up(COMPONENT) else 0
            acquiring: asyncio.Future[None] | None = None
            if rate:
                leased = self._admit_leased(key, plan, asked, now)
                if leased is not _MISS:
                    return leased
                pending = self.book.acquiring.get(key)
                if pending is not None:  # another request of the key is asking for a grant: draw from it
                    await asyncio.shield(pending)
                    now = time.time()
                    plan = self._plan(key, team, now)
                    leased = self._admit_leased(key, plan, asked, now)
                    if leased is not _MISS:
                        return leased
                    rate = 0  # not enough: this request asks for itself only
                else:
                    acquiring = self.book.acquiring[key] = asyncio.get_running_loop().create_future()
            rid = f"{_RID_PREFIX}{next(_rid_counter):x}"
            try:
                res = await self.health.call(
                    COMPONENT, lambda: self._admit_redis(key, rl, budgets, asked, rid, now, rate)
                )
            finally:
                if acquiring is not None:
                    del self.book.acquiring[key]
                    acquiring.set_result(None)
            if res is not None:
                self._local_rpm(key, rl, now)  # keep the local window warm for a fallback
                self._verdict(res, key, rl, budgets, asked, now)
                if rate:
                    return self._take_leases(res, key, rl, budgets, asked, rid, now)
                return self._hold(rid, budgets, asked, now, shared=True)
            self.book.retire_all()  # their Redis members may expire before Redis is back
            self.metrics.shared_state_degraded.labels(COMPONENT, self.policy).inc()
            if self.policy == "fail_closed":
                raise SharedStateUnavailable()
        self._admit_local(key, rl, budgets, asked, now)
        return self._hold(rid or f"{_RID_PREFIX}{next(_rid_counter):x}", budgets, asked, now, shared=False)

    def _admit_leased(self, key: str, plan: Plan, asked: list[int], now: float) -> Reservation | None:
        """Admit from this replica's grant and leases without a round trip, or ``_MISS`` when they do not cover
        the request (then the script decides, and grants anew). Its reservation has no id of its own: its holds
        live in the leases' Redis members."""
        book = self.book
        rpm = plan.rpm
        grant = None
        if rpm is not None:  # (a requests-per-minute limit)
            grant = book.grants.get(key)
            if grant is None or grant.left < 1 or grant.minute != int(now // WINDOW_S):
                return _MISS
        if plan.tpm_ceiling:
            seen = book.tokens.get(key)
            if seen is None or now - seen.at >= MAX_AGE_S or seen.used >= plan.tpm_ceiling:
                return _MISS
        buckets = plan.buckets
        n = len(buckets)
        assert len(asked) == n
        # (indexed loops, not zip(..., strict=True): compiled, a zip with a keyword is a generic call, ~1k
        # instructions each, and this runs on every admitted request of a hot key)
        found: list[Lease] = []
        for i in range(n):
            a = asked[i]
            if a <= 0:
                return _MISS
            lease = book.lease_for(buckets[i], a, now)
            if lease is None:
                return _MISS
            found.append(lease)
        self.leased += 1
        if grant is not None and rpm is not None:
            grant.left -= 1
            rpm.add(now, 1)
        if not found:
            return None
        holds: list[tuple[Bucket, int]] = []
        for i in range(n):
            lease, a = found[i], asked[i]
            lease.left -= a
            lease.open += 1
            lease.used_at = now
            holds.append((buckets[i], a))
        return self._held(Reservation("", holds, False, leases=tuple(found)))

    def _take_leases(
        self,
        res: Any,
        key: str,
        rl: RateLimitConfig | None,
        budgets: list[Budget],
        asked: list[int],
        rid: str,
        now: float,
    ) -> Reservation | None:
        """After a hot key's admission by the script: keep what it granted beyond this request."""
        granted_requests = int(res[2])
        if rl is not None and rl.requests_per_min and granted_requests > 1:
            minute = int(now // WINDOW_S)
            grant = self.book.grants.get(key)
            if grant is not None and grant.minute == minute:  # still counted in Redis: kept
                grant.left += granted_requests - 1
            else:
                self.book.grants[key] = Grant(minute, granted_requests - 1)
        if rl is not None and rl.tokens_per_min:
            self.book.tokens[key] = TokensSeen(float(res[3]), now)
        found: list[Lease] = []
        if budgets:
            b = buckets_at(now)
            granted = [int(v) for v in res[6::3]]
            for i, (x, a, g) in enumerate(zip(budgets, asked, granted, strict=True)):
                if g > 0:  # held in Redis as "<rid>.<i>:<g>"
                    lease = Lease(f"{rid}.{i}", (x.scope, x.name, b[x.period]), g, g - a, now, now, open=1)
                    self.book.add(lease)
                    found.append(lease)
        return self._hold(rid, budgets, asked, now, shared=False, leases=tuple(found))

    def _hold(
        self,
        rid: str,
        budgets: list[Budget],
        asked: list[int],
        now: float,
        shared: bool,
        leases: tuple[Lease, ...] = (),
    ) -> Reservation | None:
        """Note an admitted request's reservation in this process (and, when ``shared``, as held in Redis;
        ``leases``: the hot budgets' leases it was taken from). Synchronous after the decision, so no other
        admission on this event loop comes between."""
        b = buckets_at(now)
        assert len(asked) == len(budgets)
        holds = [((x.scope, x.name, b[x.period]), asked[i]) for i, x in enumerate(budgets) if asked[i] > 0]
        if not holds:
            return None
        r = self._held(Reservation(rid, holds, shared, leases=leases))
        if shared:
            assert self.outbox is not None
            self.outbox.held[rid] = r
        return r

    def _held(self, r: Reservation) -> Reservation:
        """Count ``r``'s holds in ``reserved`` (the event loop's own: the ledger's thread never touches it)."""
        reserved = self.reserved
        for k, a in r.holds:
            reserved[k] = reserved.get(k, 0) + a
        if self.signals.through:
            self.signals.holds_changed(r.holds, 1)
        return r

    def _local_rpm(self, key: str, rl: RateLimitConfig | None, now: float) -> None:
        if rl is not None and rl.requests_per_min:
            self._window(key, "rpm").add(now, 1)

    def _window(self, key: str, kind: str) -> Window:
        w = self.windows.get((key, kind))
        if w is None:
            w = self.windows[(key, kind)] = Window()
        return w

    def _admit_local(
        self, key: str, rl: RateLimitConfig | None, budgets: list[Budget], asked: list[int], now: float
    ) -> None:
        if budgets:
            b = buckets_at(now)
            with self._lock:
                seen = [
                    (
                        self.snapshot.get((x.scope, x.name, b[x.period]), 0)
                        + self.pending.get((x.scope, x.name, b[x.period]), 0),
                        self.reserved.get((x.scope, x.name, b[x.period]), 0),
                    )
                    for x in budgets
                ]
            for x, (s, r), a in zip(budgets, seen, asked, strict=True):
                self.signals.observe_budget(x, s, b[x.period])
                if s >= x.limit_nusd or s + r + a > x.limit_nusd:
                    self.signals.refuse_budget(x, s, r, a, now)
        if rl is not None:
            if rl.tokens_per_min and self._window(key, "tpm").count(now) >= rl.tokens_per_min:
                self.signals.refuse_rate(key, "tpm", rl.tokens_per_min, now)
            if rl.requests_per_min:
                w = self._window(key, "rpm")
                if w.count(now) + 1 > rl.requests_per_min:
                    self.signals.refuse_rate(key, "rpm", rl.requests_per_min, now)
                w.add(now, 1)

    def _keys(self, key: str, budgets: list[Budget], now: float) -> list[str]:
        minute = int(now // WINDOW_S)
        k = [
            rate_key(key, "r", minute),
            rate_key(key, "r", minute - 1),
            rate_key(key, "t", minute),
            rate_key(key, "t", minute - 1),
        ]
        b = buckets_at(now)
        for x in budgets:
            k.extend(budget_keys((x.scope, x.name, b[x.period])))
        return k

    async def _admit_redis(
        self,
        key: str,
        rl: RateLimitConfig | None,
        budgets: list[Budget],
        asked: list[int],
        rid: str,
        now: float,
        rate: int = 0,
    ) -> Any:
        """The admission script; ``rate`` > 0 (a hot key's admissions per second) asks for a grant and leases."""
        frac = (now % WINDOW_S) / WINDOW_S
        args: list[Any] = [
            repr(frac),
            (rl.requests_per_min or 0) if rl else 0,
            (rl.tokens_per_min or 0) if rl else 0,
            _RATE_TTL,
            "",
            int(self.reservation_ttl_s * 1000),
            self.book.want(rate, 1) if rate else 1,
        ]
        for i, (x, a) in enumerate(zip(budgets, asked, strict=True)):
            if rate:
                args.extend((x.limit_nusd, a, self.book.want(rate, a), BUDGET_TTL[x.period], f"{rid}.{i}"))
            else:
                args.extend((x.limit_nusd, a, a, BUDGET_TTL[x.period], rid))
        assert self._admit_script is not None
        return await self._admit_script(keys=self._keys(key, budgets, now), args=args)

    def _verdict(
        self,
        res: Any,
        key: str,
        rl: RateLimitConfig | None,
        budgets: list[Budget],
        asked: list[int],
        now: float,
    ) -> None:
        verdict, idx = int(res[0]), int(res[1])
        spent = [int(float(v)) for v in res[4::3]]
        reserved = [int(float(v)) for v in res[5::3]]
        b = buckets_at(now)
        for x, s in zip(budgets, spent, strict=False):
            self.signals.observe_budget(x, s, b[x.period])
        if verdict == 2:
            i = idx - 1
            self.signals.refuse_budget(budgets[i], spent[i], reserved[i], asked[i], now)
        elif verdict == 3:
            assert rl is not None and rl.tokens_per_min
            self.signals.refuse_rate(key, "tpm", rl.tokens_per_min, now)
        elif verdict == 1:
            assert rl is not None and rl.requests_per_min
            self.signals.refuse_rate(key, "rpm", rl.requests_per_min, now)

    # -- after the request (event loop, non-blocking) -------------------------------------------------------------
    def commit(
        self,
        key: str,
        team: str | None,
        ts: float,
        nusd: int,
        tokens: int,
        reservation: Reservation | None = None,
    ) -> None:
        """Add a finished request's cost and tokens, and release its reservation in the same step."""
        plan = self._plan(key, team, ts)  # (the buckets of the day it started in)
        if reservation is not None and reservation.released:
            reservation = None
        if plan.rl is None and not plan.budgets and reservation is None:
            return
        now = time.time()
        tpm = plan.tpm if tokens else None
        if tpm is not None:
            tpm.add(now, tokens)
        outbox = self.outbox
        spent = nusd and plan.budgets
        if spent or reservation is not None:
            if spent:
                pending = self.pending
                with self._lock:
                    for k in plan.buckets:
                        pending[k] = pending.get(k, 0) + nusd
            if reservation is not None:
                self._release_local(reservation)
            if spent and outbox is not None:
                outbox.add_each(plan.spend_keys, nusd, plan.ttls)
        if outbox is None:
            return
        if tpm is not None:
            outbox.add(plan.tpm_counter(int(now // WINDOW_S)), tokens, _RATE_TTL)
        if reservation is not None and reservation.shared:
            outbox.release(reservation)
        outbox.wake()

    def release(self, reservation: Reservation) -> None:
        """Release a reservation without adding any cost (a request that ended before it was accounted)."""
        if reservation.released:
            return
        self._release_local(reservation)
        if (reservation.shared or reservation.leases) and self.outbox is not None:
            if reservation.shared:
                self.outbox.release(reservation)
            self.outbox.wake()

    def _release_local(self, r: Reservation) -> None:
        """Drop ``r``'s holds from ``reserved`` (the event loop's own) and from the leases it was drawn from."""
        r.released = True
        for lease in r.leases:
            lease.open -= 1
        reserved = self.reserved
        for k, a in r.holds:
            left = reserved.get(k, 0) - a
            if left > 0:
                reserved[k] = left
            else:
                reserved.pop(k, None)
        if self.signals.through:
            self.signals.holds_changed(r.holds, -1)

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
