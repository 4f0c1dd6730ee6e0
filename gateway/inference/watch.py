"""Watching a client while its answer is awaited or relayed: a client that hangs up cancels the upstream call.

Most answers arrive within a few milliseconds of a cheap request, so the watcher (a task reading the ASGI
``receive`` channel, where the server reports ``http.disconnect``) only starts once the answer has taken
longer than ``delay``; until then the watch is an entry in its handler's ``Watches``, whose one timer starts the
watchers that are due (a timer per request cost more than the rest of the watch: ~2.7 us with uvloop). The
handler watches a request until its answer (or a stream's first bytes) arrives; the relay watches a stream while
it is relayed."""

from __future__ import annotations

import asyncio

from gateway.inference.asgi import Receive

WATCH_AFTER_S = 0.05
"""How long an answer may take before the client's connection is watched."""


class Watches:
    """The watches of one handler not started yet, oldest first, and one timer for the next that is due."""

    __slots__ = ("delay", "_due", "_timer", "_loop")

    def __init__(self, delay: float = WATCH_AFTER_S) -> None:
        self.delay = delay
        self._due: dict[ClientWatch, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, watch: ClientWatch) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():  # asyncio.get_running_loop() costs a getpid() call per use
            loop = self._loop = asyncio.get_running_loop()
        due = loop.time() + self.delay
        self._due[watch] = due
        if self._timer is None:
            self._timer = loop.call_at(due, self._tick)

    def discard(self, watch: ClientWatch) -> None:
        self._due.pop(watch, None)

    def _tick(self) -> None:
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        pending = self._due
        due_now = []
        for watch, due in pending.items():  # (all wait the same delay: insertion order is due order)
            if due > now:
                break
            due_now.append(watch)
        for watch in due_now:
            del pending[watch]
            watch.start(loop)
        if pending:
            self._timer = loop.call_at(next(iter(pending.values())), self._tick)


class ClientWatch:
    """Cancels the task that created it when the client disconnects; ``gone`` says that it did."""

    __slots__ = ("_receive", "_task", "_watches", "_watcher", "gone")

    def __init__(self, receive: Receive, watches: Watches) -> None:
        self._receive = receive
        self._watches: Watches | None = watches
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False
        watches.add(self)
        self._task = asyncio.current_task(watches._loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watches = None
        self._watcher = loop.create_task(self._watch())

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
        if self._watches is not None:
            self._watches.discard(self)
            self._watches = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def absorb(self) -> bool:
        """After a ``CancelledError``: True (and the cancellation taken back) when it was this watch's."""
        if not self.gone or self._task is None:
            return False
        self._task.uncancel()
        return True
