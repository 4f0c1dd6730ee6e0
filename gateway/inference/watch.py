"""Watching a client while its non-streamed answer is awaited: a client that hangs up cancels the upstream call.

Most answers arrive within a few milliseconds of a cheap request, so the watcher (a task reading the ASGI
``receive`` channel, where the server reports ``http.disconnect``) only starts once the answer has taken
longer than ``delay``; until then the watch is a timer handle. A streamed request is watched by the relay."""

from __future__ import annotations

import asyncio

from gateway.inference.asgi import Receive

WATCH_AFTER_S = 0.05
"""How long an answer may take before the client's connection is watched."""


class ClientWatch:
    """Cancels the task that created it when the client disconnects; ``gone`` says that it did."""

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "gone")

    def __init__(self, receive: Receive, delay: float = WATCH_AFTER_S) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(delay, self._start)

    def _start(self) -> None:
        self._timer = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            msg = await self._receive()
            if msg["type"] == "http.disconnect":
                self.gone = True
                if self._task is not None:
                    self._task.cancel()
                return

    def close(self) -> None:
        """Stop watching (the answer arrived, or the request ended another way)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def absorb(self) -> bool:
        """After a ``CancelledError``: True (and the cancellation taken back) when it was this watch's."""
        if not self.gone or self._task is None:
            return False
        self._task.uncancel()
        return True
