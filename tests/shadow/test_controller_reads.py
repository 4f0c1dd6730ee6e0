"""What the promotion controller reads, and how often: a gauge refresh or a guard's read that takes long pushes the
next one out, so none takes over the leader's core however many pairs and requests a busy route stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from accounting.metrics import Metrics
from routing.models import ModelTable
from routing.policy import Policy
from routing.shadow.config import PromotionConfig
from routing.shadow.promotion import RAMPING, READ_COST_FACTOR, PromotionController
from routing.shadow.record import PairRecord, Side
from routing.shadow.store import Observation, SQLitePairStore

READ_S = 0.2


class SlowReads:
    """An SQLite pair store whose pair reads take ``READ_S`` (a report over many pairs) and are counted (a
    wrapper: the store is compiled in the shipped build, where a Python subclass of it is refused)."""

    def __init__(self, store: SQLitePairStore) -> None:
        self.store = store
        self.reads = 0
        self.observation_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def observations(self, route: str, since: float) -> list[Observation]:
        self.observation_reads += 1
        await asyncio.sleep(READ_S)
        return await self.store.observations(route, since)

    async def pairs(
        self,
        route: str | None,
        since: float | None,
        until: float | None,
        limit: int | None = None,
        outcome: str | None = None,
    ) -> list[PairRecord]:
        self.reads += 1
        await asyncio.sleep(READ_S)
        return await self.store.pairs(route, since, until, limit, outcome)


class Hub:
    """What the controller reads of a ``ShadowHub``: its store and the promotions it installs."""

    def __init__(self, store: SlowReads) -> None:
        self.store = store
        self.promotions: dict[str, Any] = {}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SlowReads]:
    s = SlowReads(SQLitePairStore(str(tmp_path / "shadow.sqlite3")))
    await s.start()
    yield s
    await s.close()


def controller(store: SlowReads, editor: Editor | None = None, **kw: Any) -> PromotionController:
    """A controller on ``store`` with no routes configured (each route reads at the default cap)."""
    policy = Policy([], ModelTable({}))
    return PromotionController(Hub(store), lambda: policy, editor, **kw)  # type: ignore[arg-type]


def reverse_pair(pid: str, ts: float, score: float) -> PairRecord:
    return PairRecord(
        pid,
        ts,
        "r",
        None,
        None,
        "k",
        "chat/completions",
        False,
        direction="reverse",
        primary=Side(ok=True),
        candidate=Side(ok=True),
        scores={"exact": score},
    )


class Editor:
    """The policy store's route editing, in memory: each route's targets after each edit."""

    def __init__(self) -> None:
        self.targets: dict[str, Any] = {}

    async def update_route(self, name: str, mutate: Callable[[dict[str, Any]], None], summary: str) -> int:
        r: dict[str, Any] = {"name": name}
        mutate(r)
        self.targets[name] = r["targets"]
        return len(self.targets)


async def ramping(store: SlowReads, step_started_at: float, **guards: Any) -> None:
    guards = {"min_scores": {"exact": 0.5}, "min_pairs": 2, "min_requests": 1000, **guards}
    cfg = PromotionConfig.model_validate({"dwell_s": 3600, "check_interval_s": 0.05, "guards": guards})
    await store.put_promotion(
        "r",
        {
            "route": "r",
            "status": RAMPING,
            "step": 0,
            "steps": [5, 100],
            "step_started_at": step_started_at,
            "original_targets": [{"model": "frontier"}],
            "policy_versions": [],
            "config": cfg.model_dump(mode="json"),
        },
    )


async def test_a_slow_gauge_refresh_waits_twenty_times_as_long_before_the_next(store: SlowReads) -> None:
    store.add_pair(reverse_pair("p1", time.time(), 1.0))
    await store.flush()
    ctl = controller(store, metrics=Metrics(), gauge_interval_s=0.05)
    await ctl.start()
    try:
        await asyncio.sleep(2.0)
        assert ctl.gauge_wait_s >= READ_COST_FACTOR * READ_S
        assert store.reads == 1  # at 0.05 s apart there would have been ~8
    finally:
        await ctl.close()


async def test_the_score_guards_read_a_steps_pairs_again_only_when_due(store: SlowReads) -> None:
    now = time.time()
    for i in range(3):
        store.add_pair(reverse_pair(f"p{i}", now - 1 + i / 10, 0.9))
    await ramping(store, now - 5)
    ctl = controller(store)
    for _ in range(5):  # ticks 0.05 s apart; the read took 0.2 s: next read due in 4 s
        assert (await ctl.evaluate("r") or {}).get("status") == RAMPING
    assert store.reads == 1
    await ramping(store, now - 1)  # a new step is read at once
    await ctl.evaluate("r")
    assert store.reads == 2


async def test_a_score_guard_trips_on_the_steps_reverse_pairs(store: SlowReads) -> None:
    now = time.time()
    for i in range(3):
        store.add_pair(reverse_pair(f"p{i}", now - 1 + i / 10, 0.2))
    store.add_pair(reverse_pair("before", now - 60, 1.0))  # an earlier step's
    await ramping(store, now - 5)
    editor = Editor()
    doc = await controller(store, editor).evaluate("r") or {}
    assert (doc.get("status"), doc.get("reason")) == ("rolled_back", "exact 0.200 < 0.5")
    assert editor.targets == {"r": [{"model": "frontier"}]}


async def test_the_error_guard_reads_a_steps_requests_again_only_when_due(store: SlowReads) -> None:
    now = time.time()
    for i in range(3):
        store.add_observation("r", Observation(now - 1 + i / 10, "candidate", True, 0.1))
    await ramping(store, now - 5)
    ctl = controller(store)
    for _ in range(5):
        await ctl.evaluate("r")
    assert store.observation_reads == 1


async def test_the_error_guard_trips_on_the_steps_failed_requests(store: SlowReads) -> None:
    now = time.time()
    for i in range(10):
        store.add_observation("r", Observation(now - 1 + i / 20, "candidate", i % 2 == 0, 0.1))
    store.add_observation("r", Observation(now - 60, "candidate", True, 0.1))  # an earlier step's
    await ramping(store, now - 5, min_requests=10, max_error_rate=0.2)
    doc = await controller(store, Editor()).evaluate("r") or {}
    assert (doc.get("status"), doc.get("reason")) == ("rolled_back", "candidate error rate 0.500 > 0.2")
