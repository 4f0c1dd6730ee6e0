"""A bounded queue drained in batches by a background task: how every exporter stays off the request path.

``offer`` is synchronous and O(1): it appends, or drops and counts when the queue is full. A background task
sends a batch when it is full or ``flush_interval_s`` has passed; a send that fails or passes ``timeout_s`` drops
its batch (counted). However slow or dead the destination, a request never waits for it.

A batch that is not full waits for the interval: under load, sending what is queued as soon as a send is done
sent a few records per request to the destination (what came during the previous send), each send costing as
much CPU as a full one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from accounting.export.config import QueueConfig
from wire.tasks import cancel_requested

T = TypeVar("T")
log = logging.getLogger("pointsman.export")

Dropped = Callable[[str, str, int], None]
"""``(exporter, reason, count)``: ``reason`` is ``queue_full`` or ``export_failed``."""


class Batcher(Generic[T]):
    def __init__(
        self,
        name: str,
        cfg: QueueConfig,
        send: Callable[[list[T]], Awaitable[None]],
        dropped: Dropped,
        sent: Callable[[str, int], None] | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self._send = send
        self._dropped = dropped
        self._sent = sent
        self._q: deque[T] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._now = False
        """A flush was asked for (``flushed``): what is queued goes without waiting for the interval."""

    def offer(self, item: T) -> bool:
        """Queue ``item`` for export; False (and counted) when the queue is full."""
        if len(self._q) >= self.cfg.queue_size:
            self._dropped(self.name, "queue_full", 1)
            return False
        self._q.append(item)
        if len(self._q) >= self.cfg.batch_size and self._wake is not None:
            self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._q)

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop the loop, then send what is queued within ``grace_s``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                while self._q:
                    await self._flush()
        if self._q:
            self._dropped(self.name, "export_failed", len(self._q))
            self._q.clear()

    async def flushed(self, wait_s: float = 10.0) -> None:
        """Wait until the queue is empty (tests and shutdown)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + wait_s
        while self._q and loop.time() < end:
            if self._wake is not None:
                self._now = True
                self._wake.set()
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        assert self._wake is not None
        size = self.cfg.batch_size
        while True:
            # Python 3.11's wait_for below swallows a cancellation now and then (wire.tasks)
            if cancel_requested():
                raise asyncio.CancelledError
            due = False
            try:
                await asyncio.wait_for(self._wake.wait(), self.cfg.flush_interval_s)
            except TimeoutError:
                due = True
            self._wake.clear()
            # full batches now; what is queued besides only once the interval has passed (or a flush is asked)
            left = len(self._q) if due or self._now else 0
            self._now = False
            while self._q and (len(self._q) >= size or left > 0):
                left -= await self._flush()

    async def _flush(self) -> int:
        """Send one batch (up to ``batch_size``); how many records it held."""
        n = min(len(self._q), self.cfg.batch_size)
        batch = [self._q.popleft() for _ in range(n)]
        try:
            await asyncio.wait_for(self._send(batch), self.cfg.timeout_s)
        except asyncio.CancelledError:
            self._dropped(self.name, "export_failed", len(batch))
            raise
        except Exception as exc:
            self._dropped(self.name, "export_failed", len(batch))
            self._failures += 1
            if self._failures == 1 or self._failures % 100 == 0:
                log.warning("%s export failed (%d batches so far): %r", self.name, self._failures, exc)
            return n
        if self._sent is not None:
            self._sent(self.name, len(batch))
        return n
