"""The exporter shape OTLP and PostHog share: finished requests batched (``Batcher``), each batch encoded and
POSTed to one URL; a status of 300 or more fails the batch (dropped and counted)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from accounting.export.batcher import Batcher, Dropped
from accounting.export.config import QueueConfig
from accounting.record import RequestRecord


def endpoint_url(endpoint: str, default_path: str) -> str:
    """``endpoint`` as given when it names a path, else with ``default_path`` appended."""
    base = endpoint.rstrip("/")
    return base if "/" in base.split("://", 1)[-1] else base + default_path


class HttpExporter:
    def __init__(
        self,
        name: str,
        cfg: QueueConfig,
        url: str,
        headers: dict[str, str],
        dropped: Dropped,
        sent: Callable[[str, int], None],
    ) -> None:
        self.url = url
        self.headers = headers
        self.batcher: Batcher[RequestRecord] = Batcher(name, cfg, self._send, dropped, sent)
        self.session: aiohttp.ClientSession | None = None

    def offer(self, rec: RequestRecord) -> None:
        self.batcher.offer(rec)

    def encode(self, batch: list[RequestRecord]) -> bytes:
        raise NotImplementedError

    async def payload(self, batch: list[RequestRecord]) -> bytes:
        """The body to POST for ``batch`` (``encode``'s; an exporter may spread its encoding over loop turns)."""
        return self.encode(batch)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        await self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        if self.session is not None:
            await self.session.close()

    async def _send(self, batch: list[RequestRecord]) -> None:
        assert self.session is not None
        async with self.session.post(self.url, data=await self.payload(batch), headers=self.headers) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"{self.batcher.name} endpoint answered {resp.status}")
            await resp.read()
