"""A route's daily shadow budget: spend of shadow and comparator calls, shared through the pair store.

Spend is counted locally as calls finish and re-read from the store (which other workers and replicas write
too) at most every two seconds per route, in the background; ``over`` never waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from accounting.money import to_nusd
from accounting.periods import day_bucket
from routing.shadow.config import ShadowConfig
from routing.shadow.store import PairStore

_SYNC_EVERY_S = 2.0


class ShadowBudget:
    def __init__(self, store: PairStore, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.store = store
        self.spawn = spawn
        self._spent: dict[tuple[str, str], int] = {}
        self._synced: dict[tuple[str, str], float] = {}

    def over(self, route: str, cfg: ShadowConfig) -> bool:
        """Has ``route`` spent its ``budget_usd_per_day`` today (as far as this process knows)?"""
        if cfg.budget_usd_per_day is None:
            return False
        day = day_bucket(time.time())
        k = (route, day)
        if time.monotonic() - self._synced.get(k, 0.0) > _SYNC_EVERY_S:
            self._synced[k] = time.monotonic()
            self.spawn(self._sync(route, day))
        return self._spent.get(k, 0) >= to_nusd(cfg.budget_usd_per_day)

    def add(self, route: str, cost: Decimal) -> None:
        n = to_nusd(cost)
        if n <= 0:
            return
        k = (route, day_bucket(time.time()))
        self._spent[k] = self._spent.get(k, 0) + n
        self.store.add_spend(route, k[1], n)

    async def _sync(self, route: str, day: str) -> None:
        await self.store.flush()
        total = await self.store.spend(route, day)
        k = (route, day)
        self._spent[k] = max(self._spent.get(k, 0), total)
