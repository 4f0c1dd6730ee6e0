"""Every policy store: versions append with compare-and-set, an unchanged config file is not re-imported, the
client key secrets an append revokes are recorded with it and never forgotten."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from routing.store import PolicyStore, Revocation, SQLitePolicyStore, VersionConflict
from routing.store_redis import RedisPolicyStore

DOC = {"routes": [], "models": {}, "backends": {}, "keys": []}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PolicyStore]:
    if request.param == "sqlite":
        s: PolicyStore = SQLitePolicyStore(str(tmp_path / "policy.sqlite3"))
    elif request.param == "postgres":
        from routing.store_pg import PostgresPolicyStore

        s = PostgresPolicyStore(request.getfixturevalue("shared_db"))
    else:
        url = request.getfixturevalue("redis_server")
        prefix = f"test:{tmp_path.name}:"
        s = RedisPolicyStore(url, prefix=prefix, channel=prefix + "changed")
    await s.open()
    yield s
    await s.close()
    if request.param == "redis":
        client = aioredis.from_url(request.getfixturevalue("redis_server"))
        async for k in client.scan_iter(f"test:{tmp_path.name}:*"):
            await client.delete(k)
        await client.aclose()


async def test_append_with_a_stale_head_is_a_conflict(store: PolicyStore) -> None:
    await store.seed(DOC, "h1", "config")
    await store.append({**DOC, "routes": [{"name": "a"}]}, "admin", "one", expect=1)
    with pytest.raises(VersionConflict):
        await store.append(DOC, "admin", "stale", expect=1)
    assert await store.head() == 2


async def test_seed_with_an_unchanged_config_keeps_later_versions(store: PolicyStore) -> None:
    await store.seed(DOC, "h1", "config")
    await store.append({**DOC, "routes": [{"name": "a"}]}, "admin", "one", expect=1)
    latest = await store.seed(DOC, "h1", "config")
    assert latest.version == 2 and latest.doc["routes"] == [{"name": "a"}]


async def test_seed_with_a_changed_config_appends_it(store: PolicyStore) -> None:
    await store.seed(DOC, "h1", "config")
    latest = await store.seed({**DOC, "models": {"m": {"backend": "b"}}}, "h2", "config")
    assert (latest.version, latest.source) == (2, "config")


async def test_history_is_newest_first(store: PolicyStore) -> None:
    await store.seed(DOC, "h1", "config")
    for i in range(3):
        await store.append(DOC, "admin", f"change {i}", expect=i + 1)
    assert [v.summary for v in await store.history(3)] == ["change 2", "change 1", "change 0"]
    old = await store.get(1)
    assert old is not None and old.source == "config"


async def test_an_append_records_the_secrets_it_revokes_with_its_version(store: PolicyStore) -> None:
    await store.seed(DOC, "h1", "config")
    pv = await store.append(DOC, "admin", "delete key app", expect=1, revoke={"a" * 64: "app"})
    assert await store.revocations() == {
        "a" * 64: Revocation("a" * 64, "app", 2, pytest.approx(pv.created_at))
    }


async def test_a_conflicting_append_revokes_nothing(store: PolicyStore) -> None:
    await store.seed(DOC, "h1", "config")
    await store.append(DOC, "admin", "one", expect=1)
    with pytest.raises(VersionConflict):
        await store.append(DOC, "admin", "stale", expect=1, revoke={"a" * 64: "app"})
    assert await store.revocations() == {}


async def test_revoked_secrets_outlive_a_changed_config_import(store: PolicyStore) -> None:
    await store.seed(DOC, "h1", "config")
    await store.append(DOC, "admin", "rotate key app", expect=1, revoke={"b" * 64: "app"})
    await store.seed({**DOC, "models": {"m": {"backend": "b"}}}, "h2", "config")
    assert set(await store.revocations()) == {"b" * 64}


@pytest.mark.postgres
async def test_a_postgres_append_wakes_the_other_replicas_waiting_store(shared_db: str) -> None:
    from routing.store_pg import PostgresPolicyStore

    a, b = PostgresPolicyStore(shared_db), PostgresPolicyStore(shared_db)
    await a.open()
    await b.open()
    try:
        await a.seed(DOC, "h1", "config")
        waiting = asyncio.get_running_loop().create_task(b.wait_change(120))
        await asyncio.sleep(0.2)  # b is listening (a notification sent before it waits is still delivered)
        t0 = time.monotonic()
        await a.append({**DOC, "routes": [{"name": "a"}]}, "admin", "one", expect=1)
        await asyncio.wait_for(waiting, 60)
        assert time.monotonic() - t0 < 60  # woken by NOTIFY, not by its 120 s timeout
        assert await b.head() == 2 and [v.summary for v in await b.history(5)] == ["one", "config"]
    finally:
        await a.close()
        await b.close()
