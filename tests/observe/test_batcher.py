"""The exporters' batcher (``accounting.export.batcher``) sends full batches under load: what arrives while a send
is in flight waits for its batch to fill (or for the interval), instead of going out as a batch of its own. Sending
a few records per send cost the gateway as much CPU per send as a full batch (session 11: ~9% of a request's CPU
with request logs on)."""

from __future__ import annotations

import asyncio

from accounting.export.batcher import Batcher
from accounting.export.config import QueueConfig


def run_steady_load(items: int, spacing_s: float, send_s: float, batch: int, interval_s: float) -> list[int]:
    """Offer ``items`` one every ``spacing_s`` to a batcher whose sends take ``send_s``; the sizes it sent."""
    sizes: list[int] = []

    async def send(records: list[int]) -> None:
        sizes.append(len(records))
        await asyncio.sleep(send_s)

    async def main() -> None:
        cfg = QueueConfig(batch_size=batch, flush_interval_s=interval_s, timeout_s=5)
        b: Batcher[int] = Batcher("logs", cfg, send, lambda *_: None)
        await b.start()
        for i in range(items):
            b.offer(i)
            await asyncio.sleep(spacing_s)
        await b.close()

    asyncio.run(main())
    return sizes


def test_records_arriving_during_a_send_wait_for_a_full_batch() -> None:
    sizes = run_steady_load(items=60, spacing_s=0.004, send_s=0.02, batch=10, interval_s=30)
    assert sizes == [10] * 6


def test_a_batch_that_does_not_fill_goes_when_the_interval_has_passed() -> None:
    sizes = run_steady_load(items=3, spacing_s=0.1, send_s=0.0, batch=10, interval_s=0.05)
    assert sum(sizes) == 3 and len(sizes) >= 2  # not held back until close


def test_close_ends_the_loop_when_its_wait_swallows_the_cancellation() -> None:
    async def main() -> float:
        cfg = QueueConfig(batch_size=10, flush_interval_s=30, timeout_s=5)
        b: Batcher[int] = Batcher("logs", cfg, lambda _: asyncio.sleep(0), lambda *_: None)
        await b.start()
        await asyncio.sleep(0.01)
        assert b._wake is not None and b._task is not None
        # the wait completes in the same turn as the cancellation: Python 3.11's wait_for returns instead of raising
        b._wake.set()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.wait_for(b.close(), 3)
        return loop.time() - t0

    assert asyncio.run(main()) < 1
