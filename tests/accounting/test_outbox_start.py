"""The outbox that pushes a replica's spend to Redis starts with the first limited admission, also when a config
change brings the first budget after the limits started without any (``Limits._ensure_flusher``; admission checks
a flag per request, not the outbox)."""

from __future__ import annotations

import asyncio
import time

from accounting.config import AccountingConfig
from accounting.periods import buckets_at
from accounting.shared_limits import spend_key
from tests.accounting.replicas import replica_on

BUDGET = {"budgets": [{"scope": "team", "name": "perf", "daily_usd": "100"}]}


def test_spend_reaches_redis_when_a_config_change_brings_the_first_budget(redis_server: str) -> None:
    async def run() -> int:
        limits, client = await replica_on(
            redis_server, {}
        )  # started with nothing limited: no outbox loop yet
        await client.execute("FLUSHDB")
        assert await limits.admit("k", "perf", [1_000]) is None
        limits.configure(AccountingConfig.model_validate(BUDGET))
        held = await limits.admit("k", "perf", [1_000])
        limits.commit("k", "perf", time.time(), 700, 10, held)
        key = spend_key(("team", "perf", buckets_at(time.time())["daily"]))
        deadline = time.monotonic() + 5
        spent = 0
        while time.monotonic() < deadline:
            spent = int(await client.execute("GET", key) or 0)
            if spent == 700:
                break
            await asyncio.sleep(0.02)
        await limits.close()
        await client.aclose()
        return spent

    assert asyncio.run(run()) == 700
