"""The owner records a replica could not write (its store down) are kept in memory, checked against, and written once
the store takes them; past ``MAX_UNWRITTEN`` ids the oldest are dropped. Against a store that refuses writes while
it is down, as Redis or a database does (the running-gateway behaviour: ``tests/reliability/test_response_owners.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.errors import ApiError
from gateway.inference.ownership import MAX_UNWRITTEN, ResponseOwnership
from routing.response_owners import OwnerStoreUnavailable, Stored

MINE = Stored("team:search", "up", "http://up/v1")


class OutageStore:
    """Keeps records in a dict; while ``down`` every call raises ``OwnerStoreUnavailable``."""

    def __init__(self) -> None:
        self.down = True
        self.records: dict[str, Stored] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def record(self, ids: Sequence[str], stored: Stored) -> None:
        if self.down:
            raise OwnerStoreUnavailable("down")
        for i in ids:
            self.records.setdefault(i, stored)

    async def find(self, ids: Sequence[str]) -> dict[str, Stored]:
        if self.down:
            raise OwnerStoreUnavailable("down")
        return {i: self.records[i] for i in ids if i in self.records}


async def settled() -> None:
    """Let the write tasks run (and fail)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_record_the_store_refused_is_checked_from_memory_meanwhile() -> None:
    owners = ResponseOwnership(OutageStore(), lambda: False)
    owners.record_soon(["resp_1", "msg_1"], MINE)
    await settled()
    with pytest.raises(ApiError) as caught:
        await owners.check({"previous_response_id": "resp_1"}, "billing", "billing")
    assert caught.value.status == 404
    await owners.close()


async def test_a_record_the_store_refused_is_written_once_it_takes_them() -> None:
    store = OutageStore()
    owners = ResponseOwnership(store, lambda: False)
    owners.record_soon(["resp_1", "msg_1"], MINE)
    await settled()
    store.down = False
    async with asyncio.timeout(5):
        while len(store.records) < 2:
            await asyncio.sleep(0.05)
    assert store.records == {"resp_1": MINE, "msg_1": MINE}
    await owners.close()


async def test_past_the_bound_the_oldest_unwritten_records_are_dropped() -> None:
    store = OutageStore()
    owners = ResponseOwnership(store, lambda: False)
    batch = MAX_UNWRITTEN * 2 // 5
    for b in range(3):
        owners.record_soon([f"resp_{b}_{i}" for i in range(batch)], MINE)
        await settled()
    store.down = False
    await owners.close()  # writes what is kept
    assert "resp_0_0" not in store.records
    assert {"resp_1_0", f"resp_2_{batch - 1}"} <= store.records.keys()
