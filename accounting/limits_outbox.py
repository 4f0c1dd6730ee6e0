"""What a replica owes Redis for its limits and budgets, and the background loop that pays it.

Spend and token counts of finished requests and the reservations (and leases, ``accounting.leases``) they
release wait here and are pushed together, at most every ``PUSH_EVERY_S``, by one idempotent script. The same
loop renews what this replica still holds in Redis (every ``ttl_s / 3``) and, at most once a second, re-seeds a
Redis that lost the budget counters from this replica's ledger totals. ``accounting.limits`` fills it from the
request path; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable

from accounting.leases import Bucket, LeaseBook
from accounting.periods import period_of
from accounting.reservation import Reservation
from accounting.resp import RespClient
from accounting.shared_limits import (
    BUDGET_TTL,
    MARKER,
    PREFIX,
    PUSH_ID_TTL,
    PUSH_LUA,
    RENEW_LUA,
    RESEED_LUA,
    RedisHealth,
    budget_keys,
    spend_key,
)

log = logging.getLogger("pointsman.limits")

COMPONENT = "limits"
RESEED_EVERY_S = 1.0
"""How often a replica checks that Redis still has the shared budget counters (a Redis that lost its data is
noticed within this; between pushes under load, not after each one)."""
PUSH_EVERY_S = 0.05
"""Spend, tokens and releases are pushed to Redis at most this often: under load one script carries many
requests (their reservations stay held until then, so a budget is never passed meanwhile)."""


class Outbox:
    """Counters to add, reservations to release and to renew in Redis; the loop that does it."""

    def __init__(
        self,
        client: RespClient,
        health: RedisHealth,
        book: LeaseBook,
        ttl_s: Callable[[], float],
        totals: Callable[[], dict[Bucket, int]],
    ) -> None:
        self.health = health
        self.book = book
        self._batch_prefix = uuid.uuid4().hex[:16]
        self._batches = itertools.count()
        """Push batch ids: this replica's random prefix and a counter (unique across replicas, as the push script's
        applied-once check needs; no ``os.urandom`` per push, which releases the GIL on the event loop's thread)."""
        self.ttl_s = ttl_s
        """The reservations' lifetime in force (``accounting.reservations.ttl_s``)."""
        self.totals = totals
        """This replica's ledger totals per current budget bucket (empty: no budgets), for re-seeding."""
        self._push_script = client.script(PUSH_LUA)
        self._renew_script = client.script(RENEW_LUA)
        self._reseed_script = client.script(RESEED_LUA)
        self.counters: dict[str, int] = {}
        self.counter_ttl: dict[str, int] = {}
        self.releases: list[Reservation] = []
        self.held: dict[str, Reservation] = {}
        """Reservations held in Redis and not yet released there: renewed every ``ttl_s / 3``."""
        self._unsent: tuple[str, dict[str, int], dict[str, int], list[Reservation]] | None = None
        self._renewed_at = 0.0
        self._pushed_at = 0.0
        self._reseeded_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        health.on_up.append(self._redis_back)

    # -- request path -------------------------------------------------------------------------------------------
    def add(self, key: str, amount: int, ttl: int) -> None:
        """Add ``amount`` to the Redis counter ``key`` (which lives ``ttl`` seconds after its last write)."""
        self.counters[key] = self.counters.get(key, 0) + amount
        self.counter_ttl[key] = ttl

    def add_each(self, keys: list[str], amount: int, ttls: list[int]) -> None:
        """``add(key, amount, ttl)`` for each of ``keys`` and its ``ttls`` (a budget's buckets: one call per
        request)."""
        counters, counter_ttl = self.counters, self.counter_ttl
        assert len(ttls) == len(keys)
        for i in range(len(keys)):  # (not zip(..., strict=True): compiled, a generic call per request)
            key = keys[i]
            counters[key] = counters.get(key, 0) + amount
            counter_ttl[key] = ttls[i]

    def release(self, r: Reservation) -> None:
        """Release ``r``'s members in Redis with the next push (after the spend added before it)."""
        self.releases.append(r)

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Make the loop ready; ``run`` starts it (once something is limited)."""
        self._wake = asyncio.Event()

    def run(self) -> bool:
        """Start the loop (once started, and only once); whether it runs."""
        if self._task is None and self._wake is not None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return self._task is not None

    async def close(self) -> None:
        """Push what is left (up to 5 s) and stop."""
        self._closing = True
        if self._task is not None:
            self.wake()
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                pass

    def _redis_back(self, component: str) -> None:
        if component == COMPONENT and (self.counters or self.releases or self._unsent is not None):
            self.wake()

    # -- the loop -----------------------------------------------------------------------------------------------
    async def _loop(self) -> None:
        assert self._wake is not None
        health = self.health
        while True:
            try:
                await asyncio.wait_for(
                    self._wake.wait(), 1.0
                )  # at least every second: check for a lost Redis
            except TimeoutError:
                pass
            self._wake.clear()
            wait = PUSH_EVERY_S - (time.monotonic() - self._pushed_at)
            if wait > 0 and not self._closing:
                await asyncio.sleep(wait)
            self._collect_releases()
            if self._unsent is None and (self.counters or self.releases):
                self._pushed_at = time.monotonic()
                self._unsent = (
                    f"{self._batch_prefix}{next(self._batches):x}",
                    self.counters,
                    self.counter_ttl,
                    self.releases,
                )
                self.counters, self.counter_ttl, self.releases = {}, {}, []
            if self._unsent is not None and health.is_up(COMPONENT):
                # A batch is applied at most once: a push that timed out may still have reached Redis (it was
                # only slow, or frozen), so it is retried under the same id, which the script remembers.
                if await health.call(COMPONENT, self._push) is not None:
                    for r in self._unsent[3]:
                        self.held.pop(r.id, None)
                    self._unsent = None
                    if self.counters or self.releases:
                        self._wake.set()
            if (self.held or self.book.leases) and time.monotonic() - self._renewed_at >= self.ttl_s() / 3:
                if health.is_up(COMPONENT):
                    await health.call(COMPONENT, self._renew)
            if (
                self._unsent is None
                and not self.counters
                and time.monotonic() - self._reseeded_at >= RESEED_EVERY_S
                and health.is_up(COMPONENT)
            ):
                self._reseeded_at = time.monotonic()
                await health.call(COMPONENT, self._reseed)  # after the pushes: never counts a push twice
            if self._closing:
                if not health.is_up(COMPONENT):
                    return  # shutting down with Redis away: nothing more can be pushed
                if self._collect_releases():
                    self._wake.set()  # leases ``close`` retired while this pass was pushing: one more pass
                elif self._unsent is None and not self.counters and not self.releases:
                    return  # shutting down: everything pushed

    def _collect_releases(self) -> bool:
        """Queue the leases done with (``LeaseBook.to_release``) for the next push, after their requests' spend
        (in the same batch); whether there were any."""
        done = self.book.to_release(time.time())
        for lease in done:
            self.releases.append(Reservation(lease.id, [(lease.bucket, lease.size)], shared=True))
        return bool(done)

    async def _push(self) -> bool:
        assert self._unsent is not None
        batch, out, ttl, released = self._unsent
        keys = [f"{PREFIX}push:{batch}", *out]
        members = []
        for r in released:
            for k, a in r.holds:
                keys.extend(budget_keys(k)[1:])
                members.append(f"{r.id}:{a}")
        args: list[int | str] = [PUSH_ID_TTL, len(out), *out.values(), *(ttl[k] for k in out), *members]
        await self._push_script(keys=keys, args=args)
        return True

    async def _renew(self) -> bool:
        """Extend the life of the reservations and leases this replica still holds in Redis."""
        keys: list[str] = []
        members: list[str] = []
        for r in list(self.held.values()):
            for k, a in r.holds:
                keys.append(budget_keys(k)[1])
                members.append(f"{r.id}:{a}")
        for lease in self.book.held():
            keys.append(budget_keys(lease.bucket)[1])
            members.append(f"{lease.id}:{lease.size}")
        self._renewed_at = time.monotonic()
        await self._renew_script(keys=keys, args=[int(self.ttl_s() * 1000), *members])
        return True

    async def _reseed(self) -> bool:
        """If Redis lost its data, raise the shared budget counters to this replica's ledger totals."""
        totals = self.totals()
        if not totals:
            return True
        keys = [MARKER] + [spend_key(b) for b in totals]
        ttls = [BUDGET_TTL[period_of(bucket)] for _, _, bucket in totals]
        raised = await self._reseed_script(keys=keys, args=[*totals.values(), *ttls])
        if raised:
            log.warning("redis had lost the shared budget counters; restored %d from the ledger", raised)
        return True
