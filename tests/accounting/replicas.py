"""Two ``Limits`` replicas sharing one real Redis, as the budget properties drive them (``test_reservation_bound``:
reservations; ``test_leases``: a hot key's leases)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal

from accounting.config import AccountingConfig
from accounting.errors import BudgetExceeded
from accounting.limits import Limits
from accounting.metrics import Labels, Metrics
from accounting.money import to_nusd
from accounting.resp import RespClient
from accounting.shared_limits import RedisHealth

Request = tuple[int, float, float, bool]
"""(USD reserved, share of it actually spent, seconds it runs, which replica admits it)."""


def limits_of(accounting: dict[str, object]) -> Limits:
    labels = Labels(tasks=set(), teams=set(), models=set(), backends=set(), routes=set(), keys={"k"})
    return Limits(AccountingConfig.model_validate(accounting), Metrics(labels))


async def replica_on(url: str, accounting: dict[str, object]) -> tuple[Limits, RespClient]:
    """One replica with ``accounting`` on the Redis at ``url``, ``fail_closed``, started."""
    limits = limits_of(accounting)
    # 5 s, not the gateway's 0.5 s: a reply read late by a loop busy with hundreds of admissions (under coverage,
    # on a loaded machine) is not the outage these properties are about; fail_closed would refuse it
    client = RespClient(url, timeout_s=5.0, connect_timeout_s=5.0)
    limits.use_redis(client, "fail_closed", RedisHealth(client, limits.metrics, "fail_closed"))
    await limits.start()
    return limits, client


@contextlib.asynccontextmanager
async def replicas_on(
    url: str, accounting: dict[str, object]
) -> AsyncIterator[tuple[list[Limits], list[RespClient]]]:
    """Two replicas with ``accounting`` on an emptied Redis at ``url``, ``fail_closed``, connected; their clients
    are closed on the way out, also when a request fails (an open socket left to the collector fails a later
    test)."""
    replicas: list[Limits] = []
    clients: list[RespClient] = []
    try:
        for _ in range(2):
            limits, client = await replica_on(url, accounting)
            replicas.append(limits)
            clients.append(client)
        await clients[0].execute("FLUSHDB")
        for c in clients:  # connected before the burst: its 0.5 s timeouts are not what these tests are about
            await c.execute("PING")
        yield replicas, clients
    finally:
        for c in clients:
            await c.aclose()


async def total(c: RespClient, pattern: str) -> int:
    return sum([int(await c.execute("GET", k) or 0) for k in await c.execute("KEYS", pattern)])


def spend_on_two_replicas(
    url: str, budget_usd: int, requests: list[Request], in_flight: int | None = None
) -> tuple[int, int, list[Limits]]:
    """Run ``requests`` against key ``k``'s daily budget of ``budget_usd`` over two replicas (at most
    ``in_flight`` at once; None: all at once), close them, and return (nano-USD spent, nano-USD still held in
    Redis, the replicas). Checks that Redis's spend is exactly what was spent."""

    async def run() -> tuple[int, int, list[Limits]]:
        async with replicas_on(
            url, {"budgets": [{"scope": "key", "name": "k", "daily_usd": str(budget_usd)}]}
        ) as (replicas, clients):
            spent = 0
            gate = asyncio.Semaphore(in_flight or len(requests) or 1)

            async def one(reserve_usd: int, share: float, runs_s: float, side: bool) -> None:
                nonlocal spent
                async with gate:
                    limits = replicas[side]
                    amount = to_nusd(Decimal(reserve_usd))
                    try:
                        r = await limits.admit("k", None, [amount])
                    except BudgetExceeded:
                        return
                    await asyncio.sleep(runs_s)
                    actual = int(amount * share)
                    limits.commit("k", None, time.time(), actual, 0, r)
                    spent += actual

            await asyncio.gather(*(one(*q) for q in requests))
            for limits in replicas:
                await limits.close()
            c = clients[0]
            shared, held = await total(c, "pointsman:spend:*"), await total(c, "pointsman:reserved:*")
        assert shared == spent
        return spent, held, replicas

    return asyncio.run(run())
