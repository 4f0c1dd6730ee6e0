"""Dataset exports read judged shadow pairs a page at a time (``gateway.dataset_pairs.StorePairs``), from the
export's worker thread through the event loop, over each kind of pair store: the same pairs, in the same order,
as reading the whole window at once, and never more than a page per read."""

from __future__ import annotations

import asyncio
from typing import Any

from accounting.capture.export import JudgedPair, StaticPairs
from gateway.dataset_pairs import StorePairs, judged
from routing.shadow.record import PairRecord
from routing.shadow.store import PairStore
from tests.shadow.test_store import T0, pair

JUDGES = {"r1": {"judge"}, "r2": {"judge"}}


def judged_pair(pid: str, route: str, ts: float, score: float | None, task: str = "t") -> PairRecord:
    p = pair(pid, route, ts)
    p.task = task
    if score is not None:
        p.scores = {"judge": score}
    p.capture = {
        "request": {"messages": [{"role": "user", "content": pid}]},
        "primary": {"text": f"primary {pid}"},
        "candidate": {"text": f"candidate {pid}"},
    }
    return p


class CountingStore:
    """A pair store that remembers how many pairs each read returned (a wrapper: the stores are compiled)."""

    def __init__(self, store: PairStore) -> None:
        self.store = store
        self.reads: list[int] = []

    async def pairs(self, *args: Any, **kwargs: Any) -> list[PairRecord]:
        got = await self.store.pairs(*args, **kwargs)
        self.reads.append(len(got))
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def fill(store: PairStore) -> list[PairRecord]:
    """60 pairs on two judged routes and one not: scores of every kind, none, repeated times."""
    out = []
    for i in range(60):
        score = (1.0, 0.0, 0.5, None)[i % 4]
        route = ("r1", "r2", "r3")[i % 3]
        p = judged_pair(f"p{i:02}", route, T0 + (i // 2) * 7.25, score, task="t" if i % 5 else "other")
        store.add_pair(p)
        out.append(p)
    await store.flush()
    return out


def expected(pairs: list[PairRecord]) -> StaticPairs:
    """What reading each route's whole window at once gives (the export's source before paging)."""
    out = []
    for route in sorted(JUDGES):
        for p in sorted((p for p in pairs if p.route == route), key=lambda p: p.ts):
            jp = judged(p, JUDGES[route])
            if jp is not None:
                out.append(jp)
    return StaticPairs(out)


def ids(pairs: list[JudgedPair]) -> list[str]:
    return [p.request_id for p in pairs]


async def test_judged_pairs_are_read_a_page_at_a_time_oldest_first(store: PairStore) -> None:
    pairs = await fill(store)
    counting = CountingStore(store)
    source = StorePairs(counting, JUDGES, asyncio.get_running_loop(), page=4)  # type: ignore[arg-type]
    for window in [(None, None, None, None), (T0 + 20, T0 + 150, "t", None), (None, T0 + 100, None, "r2")]:
        got = await asyncio.to_thread(lambda w=window: list(source.judged_pairs(*w)))
        assert ids(got) == ids(list(expected(pairs).judged_pairs(*window)))
        assert got
    assert max(counting.reads) <= 4
    assert len(counting.reads) > 10


async def test_the_judged_pairs_of_a_batch_of_requests_are_looked_up_by_id(store: PairStore) -> None:
    pairs = await fill(store)
    source = StorePairs(store, JUDGES, asyncio.get_running_loop())
    wanted = [p.id for p in pairs[::2]] + ["unknown"]
    for window in [(None, None, None, None), (T0 + 20, T0 + 150, "t", "r1")]:
        got = await asyncio.to_thread(source.judged_pairs_of, wanted, *window)
        want = expected(pairs).judged_pairs_of(wanted, *window)
        assert sorted(got) == sorted(want)
        assert all(got[i] == want[i] for i in want)
        assert want
