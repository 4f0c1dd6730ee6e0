"""The ledger shared across replicas through Redis.

Every replica writes its own rows to its local SQLite ledger (durable even while Redis is down) and publishes
them to one Redis stream, a batch of rows per entry (``rows``: JSON lines), each entry naming its publisher. Every replica also copies the other replicas' entries
into its own SQLite file, idempotently (rows have unique ids; the stream position is stored in the same
transaction), so ``/admin/spend`` answered by any
replica covers all of them, with the same SQL in both modes. Rows published while Redis is unreachable wait
in memory (bounded) and go out when it is back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Any

from accounting.ledger import SQLiteLedger, row_from_json, rows_to_json_lines
from accounting.resp import RespClient
from accounting.shared_limits import RedisHealth
from wire.tasks import cancel_requested

log = logging.getLogger("pointsman.ledger")

STREAM = "pointsman:ledger"
COMPONENT = "ledger"


class SharedLedgerLink:
    def __init__(
        self,
        ledger: SQLiteLedger,
        client: RespClient,
        reader: RespClient,
        health: RedisHealth,
        maxlen: int,
        interval_s: float = 0.25,
        max_outbox: int = 500_000,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.reader = reader
        """A connection without the short socket timeout, for the blocking stream read."""
        self.health = health
        self.maxlen = maxlen
        self.interval_s = interval_s
        self.max_outbox = max_outbox
        self.outbox: deque[tuple[Any, ...]] = deque()
        """Rows to publish, encoded by the publish loop a batch at a time (not one call per request)."""
        self.dropped = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._wake = asyncio.Event()
        self.position = "0-0"

    def publish(self, row: tuple[Any, ...]) -> None:
        if len(self.outbox) >= self.max_outbox:
            self.dropped += 1
            return
        self.outbox.append(row)

    async def start(self) -> None:
        pos = await asyncio.to_thread(self.ledger.stream_position)
        self.position = pos or "0-0"
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._publish_loop()), loop.create_task(self._copy_loop())]

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        pub = self._tasks[0] if self._tasks else None
        for t in self._tasks[1:]:
            t.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        if pub is not None:
            try:
                await asyncio.wait_for(pub, 5)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if self.outbox:
            log.warning(
                "ledger: %d rows not published to the shared stream (Redis unavailable); they are in the "
                "local ledger",
                len(self.outbox),
            )

    async def _publish_loop(self) -> None:
        while True:
            # Python 3.11's wait_for below swallows a cancellation now and then (wire.tasks)
            if cancel_requested():
                raise asyncio.CancelledError
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            # The rows queued by now; those that come while they are sent wait for the next round (draining
            # until the outbox is empty sent a small entry per round trip under load, each read back by every
            # replica). Closing sends them all.
            due = len(self.outbox)
            while self.outbox and (due > 0 or self._closing) and self.health.is_up(COMPONENT):
                batch = list(itertools.islice(self.outbox, min(1000, due) if due > 0 else 1000))

                rows = rows_to_json_lines(batch)

                async def send(rows: bytes = rows, n: int = len(batch)) -> bool:
                    # one entry per batch; the stream is trimmed to about ``maxlen`` rows at this batch size
                    keep = max(1, self.maxlen // n)
                    me = self.ledger.replica
                    await self.client.execute("XADD", STREAM, "MAXLEN", "~", keep, "*", "rows", rows, "p", me)
                    return True

                if await self.health.call(COMPONENT, send) is None:
                    break
                for _ in batch:
                    self.outbox.popleft()
                due -= len(batch)
            if self._closing:
                return

    async def _copy_loop(self) -> None:
        while not self._closing:
            if not self.health.is_up(COMPONENT):
                await asyncio.sleep(0.5)
                continue
            pos = self.position

            async def read(pos: str = pos) -> Any:
                return await self.reader.execute("XREAD", "COUNT", 20, "BLOCK", 1000, "STREAMS", STREAM, pos)

            res = await self.health.call(COMPONENT, read)
            if not res:
                continue
            for _stream, entries in res:
                rows = []
                last = pos
                me = self.ledger.replica.encode()
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    got = dict(zip(fields[0::2], fields[1::2], strict=True))
                    if got.get(b"p") == me:
                        continue  # this replica's own rows: already in its ledger
                    raw = got.get(b"rows")
                    lines = raw.split(b"\n") if raw is not None else [got.get(b"r") or b""]  # "r": one row
                    for line in lines:
                        row = row_from_json(line) if line else None
                        if row is not None:
                            rows.append(row)
                self.position = last
                self.ledger.add_foreign(last, rows)
