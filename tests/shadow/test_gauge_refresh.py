"""The promotion controller's gauge refresh: a report that takes long pushes the next refresh out, so the gauges
never take over the leader's core."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from accounting.metrics import Metrics
from routing.models import ModelTable
from routing.policy import Policy
from routing.shadow.promotion import GAUGE_COST_FACTOR, PromotionController
from routing.shadow.record import PairRecord, Side
from routing.shadow.store import SQLitePairStore

READ_S = 0.2


class SlowReads(SQLitePairStore):
    """An SQLite pair store whose pair reads take ``READ_S`` (a report over many pairs) and are counted."""

    reads = 0

    async def pairs(
        self, route: str | None, since: float | None, until: float | None, limit: int | None = None
    ) -> list[PairRecord]:
        self.reads += 1
        await asyncio.sleep(READ_S)
        return await super().pairs(route, since, until, limit)


class Hub:
    """What the controller reads of a ``ShadowHub``: its store and the promotions it installs."""

    def __init__(self, store: SlowReads) -> None:
        self.store = store
        self.promotions: dict[str, Any] = {}


def test_a_slow_gauge_refresh_waits_twenty_times_as_long_before_the_next(tmp_path: Path) -> None:
    async def go() -> None:
        store = SlowReads(str(tmp_path / "shadow.sqlite3"))
        await store.start()
        store.add_pair(
            PairRecord(
                "p1",
                time.time(),
                "r",
                None,
                None,
                "k",
                "chat/completions",
                False,
                primary=Side(ok=True),
                candidate=Side(ok=True),
            )
        )
        await store.flush()
        policy = Policy([], ModelTable({}))
        ctl = PromotionController(Hub(store), lambda: policy, None, Metrics(), gauge_interval_s=0.05)  # type: ignore[arg-type]
        await ctl.start()
        try:
            await asyncio.sleep(2.0)
            assert ctl.gauge_wait_s >= GAUGE_COST_FACTOR * READ_S
            assert store.reads == 1  # at 0.05 s apart there would have been ~8
        finally:
            await ctl.close()
            await store.close()

    asyncio.run(go())
