"""The pair store behind its interface, embedded (SQLite) and shared (a real redis-server started by the suite),
and two replicas on one Redis seeing each other's pairs."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from routing.shadow.record import PairRecord, Side
from routing.shadow.redis_store import RedisPairStore
from routing.shadow.store import Observation, PairStore
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import ask, config, route_of, sdk, settle
from tests.shadow.fakes import ModelZoo

T0 = (
    time.time() // 60 - 60
) * 60  # an hour ago, on a minute boundary (older records are pruned after 30 days)


def pair(pid: str, route: str = "r", ts: float = T0, outcome: str = "paired") -> PairRecord:
    return PairRecord(
        id=pid,
        ts=ts,
        route=route,
        task="t",
        team=None,
        key="k",
        endpoint="chat/completions",
        stream=False,
        outcome=outcome,
        primary=Side(model="a", ok=True, cost_usd="0.00015"),
        candidate=Side(model="b", ok=True),
        scores={"exact": 1.0},
    )


async def test_a_pair_is_written_once_per_request_id(store: PairStore) -> None:
    store.add_pair(pair("x"))
    store.add_pair(pair("x", outcome="dropped"))
    await store.flush()
    store.add_pair(pair("x", outcome="candidate_failed"))
    await store.flush()
    got = await store.pairs("r", None, None)
    assert [(p.id, p.outcome) for p in got] == [("x", "paired")]
    assert got[0].primary.cost_usd == "0.00015" and got[0].scores == {"exact": 1.0}


async def test_pairs_are_selected_by_route_and_time(store: PairStore) -> None:
    for i in range(5):
        store.add_pair(pair(f"a{i}", "r1", T0 + i))
    store.add_pair(pair("b0", "r2", T0 + 2))
    await store.flush()
    assert [p.id for p in await store.pairs("r1", T0 + 1, T0 + 3)] == ["a1", "a2", "a3"]
    assert sorted(await store.routes()) == ["r1", "r2"]
    assert (await store.pair("b0")) is not None and (await store.pair("nope")) is None


async def test_a_limit_reads_the_latest_pairs_of_the_window_oldest_first(store: PairStore) -> None:
    for i in (3, 0, 4, 1, 2, 5):  # written out of order
        store.add_pair(pair(f"a{i}", "r1", T0 + i))
    store.add_pair(pair("b0", "r2", T0 + 4.5))
    await store.flush()
    assert [p.id for p in await store.pairs("r1", T0, T0 + 4, limit=3)] == ["a2", "a3", "a4"]
    assert [p.id for p in await store.pairs("r1", T0, T0 + 4, limit=10)] == ["a0", "a1", "a2", "a3", "a4"]


async def test_a_limit_with_an_outcome_reads_the_latest_pairs_of_that_outcome(store: PairStore) -> None:
    for i in range(12):
        store.add_pair(pair(f"a{i:02}", "r1", T0 + i, "dropped" if i % 3 else "paired"))
    store.add_pair(pair("b0", "r2", T0 + 11.5, "paired"))
    await store.flush()
    got = await store.pairs("r1", T0, T0 + 20, limit=3, outcome="paired")
    assert [p.id for p in got] == ["a03", "a06", "a09"]
    assert [p.id for p in await store.pairs(None, T0, T0 + 20, limit=2, outcome="paired")] == ["a09", "b0"]
    assert len(await store.pairs("r1", T0, T0 + 20, outcome="dropped")) == 8


async def test_pairs_in_a_window_are_counted_by_route(store: PairStore) -> None:
    for i in range(6):
        store.add_pair(pair(f"a{i}", "r1", T0 + i))
    store.add_pair(pair("b0", "r2", T0 + 2))
    await store.flush()
    assert await store.count_pairs("r1", T0 + 1, T0 + 4) == 4
    assert await store.count_pairs("r1", None, None) == 6
    assert await store.count_pairs("nope", None, None) == 0


async def test_route_volume_is_counted_per_minute(store: PairStore) -> None:
    for dt in (0.0, 1.0, 59.0, 60.0):
        store.add_seen("r", "t", T0 + dt)
    store.add_seen("r", None, T0 + 60)
    await store.flush()
    m = int(T0 // 60)
    assert sorted(await store.seen("r", None, None), key=lambda x: (x[1], x[0] or "")) == [
        ("t", m, 3),
        (None, m + 1, 1),
        ("t", m + 1, 1),
    ]


async def test_daily_spend_accumulates(store: PairStore) -> None:
    store.add_spend("r", "d:2026-01-01", 150)
    store.add_spend("r", "d:2026-01-01", 50)
    await store.flush()
    assert await store.spend("r", "d:2026-01-01") == 200
    assert await store.spend("r", "d:2026-01-02") == 0


async def test_observations_come_back_in_time_order(store: PairStore) -> None:
    store.add_observation("r", Observation(T0 + 2, "candidate", False, 0.2))
    store.add_observation("r", Observation(T0 + 1, "baseline", True, 0.1))
    await store.flush()
    assert await store.observations("r", T0) == [
        Observation(T0 + 1, "baseline", True, 0.1),
        Observation(T0 + 2, "candidate", False, 0.2),
    ]


async def test_the_controller_lease_is_exclusive_until_it_expires(store: PairStore) -> None:
    assert await store.try_lease("promotion", "a", 0.3)
    assert not await store.try_lease("promotion", "b", 0.3)
    assert await store.try_lease("promotion", "a", 0.3)
    time.sleep(0.4)
    assert await store.try_lease("promotion", "b", 0.3)


async def test_promotion_state_and_events_round_trip(store: PairStore) -> None:
    await store.put_promotion("r", {"route": "r", "status": "ramping", "step": 1})
    await store.add_event("r", {"ts": 1.0, "event": "start"})
    await store.add_event("r", {"ts": 2.0, "event": "step", "step": 0})
    assert await store.promotions() == [{"route": "r", "status": "ramping", "step": 1}]
    assert [e["event"] for e in await store.events("r")] == ["start", "step"]
    await store.put_promotion("r", None)
    assert await store.get_promotion("r") is None


def two_replicas_reports(zoo: ModelZoo, tmp_path: Path, seed: int, **shared: Any) -> list[dict[str, Any]]:
    """Ten requests spread over two replicas sharing ``shared`` (config sections); each replica's route report."""
    cfgs = [
        config(zoo, tmp_path / n, {"model": "cand", "sample_rate": 1.0, "compare": ["exact"]}, **shared)
        for n in ("a", "b")
    ]
    with RunningGateway(cfgs[0]) as a, RunningGateway(cfgs[1]) as b:
        with sdk(a) as ca, sdk(b) as cb, ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: ask(ca if i % 2 else cb, seed + i), range(10)))
        return [route_of(settle(gw, 10, timeout=60)) for gw in (b, a)]


@pytest.mark.redis
def test_two_replicas_on_one_redis_report_each_others_pairs(
    zoo: ModelZoo, tmp_path: Path, redis_server: str
) -> None:
    r = two_replicas_reports(zoo, tmp_path, 7000, redis={"url": redis_server})[0]
    assert r["counts"]["paired"] == 10
    assert r["cost"]["requests_seen"] == 10


@pytest.mark.postgres
def test_two_replicas_on_one_database_report_each_others_pairs(
    zoo: ModelZoo, tmp_path: Path, shared_db: str
) -> None:
    r, ra = two_replicas_reports(zoo, tmp_path, 8000, database={"backend": "postgres", "dsn": shared_db})
    assert r["counts"]["paired"] == 10 and ra["counts"]["paired"] == 10
    assert r["cost"]["requests_seen"] == 10
    assert (
        not (tmp_path / "a" / "shadow.sqlite3").exists() and not (tmp_path / "b" / "shadow.sqlite3").exists()
    )


@pytest.mark.redis
async def test_redis_route_volume_expires_with_the_pairs_it_describes(redis_server: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    s = RedisPairStore(redis_server, prefix=prefix)
    await s.start()
    try:
        s.add_seen("r", "t", T0)
        await s.flush()
        with redis.Redis.from_url(redis_server) as r:
            (key,) = r.keys(prefix + "seen*")
            assert 30 * 86400 < r.ttl(key) <= 31 * 86400
    finally:
        await s.close()


@pytest.mark.redis
async def test_redis_route_volume_of_an_earlier_version_is_read_and_then_expires(redis_server: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    m = int(T0 // 60)
    with redis.Redis.from_url(
        redis_server
    ) as r:  # one hash per route, never trimmed, as earlier versions wrote
        r.hset(prefix + "seen:r", f"t\x1f{m}", 3)
        r.sadd(prefix + "routes", "r")
        s = RedisPairStore(redis_server, prefix=prefix)
        await s.start()
        try:
            s.add_seen("r", "t", T0 + 60)
            await s.flush()
            assert sorted(await s.seen("r", None, None)) == [("t", m, 3), ("t", m + 1, 1)]
            assert 0 < r.ttl(prefix + "seen:r") <= 30 * 86400
        finally:
            await s.close()
