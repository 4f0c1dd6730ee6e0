"""Run an aiohttp application on a loopback port in a background thread (a real socket server for tests)."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import socket
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web


@functools.cache
def _port_slice() -> range:
    """The loopback ports this process hands out: below the kernel's ephemeral range (where the outgoing
    connections of every process on the machine take their local ports, so a port chosen there can be taken
    between choosing it and binding it: an "address already in use" in CI), one slice per pytest-xdist worker
    so that two workers never hand out the same port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 12000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    i = int(worker) if worker.isdigit() else 0
    width = (low - 10000) // max(n, 1)
    return range(10000 + i * width, 10000 + (i + 1) * width)


_HANDED_OUT: deque[int] = deque(maxlen=1000)


def free_port() -> int:
    """A loopback port nothing listens on, that no other test worker and no outgoing connection will take, and
    that this process has not handed out among its last 1,000 (a caller may bind it a while later)."""
    ports = _port_slice()
    for _ in range(200):
        port = random.choice(ports)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.append(port)
        return port
    raise RuntimeError(f"no free loopback port in {ports}")


class ThreadedServer:
    def __init__(self, make_app: Callable[[], web.Application], port: int | None = None) -> None:
        self.make_app = make_app
        self.port = port or free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._serve())
        loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._runner = web.AppRunner(self.make_app(), handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._ready.set()
        await self._stop.wait()
        await self._runner.cleanup()
        # Handlers still parked (hanging/stalled fakes) are cancelled, not left for the GC to complain about.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def call(self, fn: Callable[[], Any]) -> Any:
        assert self.loop is not None
        fut = asyncio.run_coroutine_threadsafe(_wrap(fn), self.loop)
        return fut.result(10)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


async def _wrap(fn: Callable[[], Any]) -> Any:
    return fn()
