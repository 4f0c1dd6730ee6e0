"""What each backend says it serves, for ``/v1/models``: a glob entry (``gpt-*``) lists the ids of its backend's
own model list that it matches.

The lists are fetched in the background for the backends glob entries route to (at start, then every
``server.models_refresh_s``) and cached; a fetch that fails keeps the last list and is logged once. A backend
not fetched yet (just started, or new in a policy change) is fetched on demand, and ``/v1/models`` waits for
it at most ``wait_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from routing.models import ModelTable
from serving.registry import BackendRegistry

log = logging.getLogger("pointsman.models")


class UpstreamModels:
    def __init__(self, table: Callable[[], ModelTable], registry: BackendRegistry, refresh_s: float) -> None:
        self._table = table
        self._registry = registry
        self.refresh_s = refresh_s
        self.served: dict[str, tuple[str, ...]] = {}
        """Backend -> the model ids its own list gave last."""
        self._tried: set[str] = set()
        self._failing: set[str] = set()
        self._round: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="pointsman-model-lists")

    async def close(self) -> None:
        for task in (self._task, self._round):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._task, self._round) if t is not None), return_exceptions=True)
        self._task = self._round = None

    async def current(self, wait_s: float = 2.0) -> Mapping[str, tuple[str, ...]]:
        """The cached lists, after fetching (for at most ``wait_s``) any glob backend never fetched yet."""
        if any(b not in self._tried for b in self._table().glob_backends):
            await asyncio.wait({self.refresh()}, timeout=wait_s)
        return self.served

    def refresh(self) -> asyncio.Task[None]:
        """Fetch every glob backend's list now (joining a fetch already under way)."""
        if self._round is None or self._round.done():
            self._round = asyncio.get_running_loop().create_task(self._fetch_all())
        return self._round

    async def _follow(self) -> None:
        while True:
            await asyncio.shield(self.refresh())
            await asyncio.sleep(self.refresh_s)

    async def _fetch_all(self) -> None:
        await asyncio.gather(*(self._fetch(b) for b in self._table().glob_backends))

    async def _fetch(self, name: str) -> None:
        backend = self._registry.get(name)
        if backend is None:
            return
        try:
            ids = await backend.list_models()
        except Exception as exc:  # an upstream without a model list: its glob models stay unlisted
            if name not in self._failing:
                self._failing.add(name)
                log.warning(
                    "backend %r: could not read its model list (%s); its glob models are not listed",
                    name,
                    exc,
                )
        else:
            self.served[name] = tuple(ids)
            if name in self._failing:
                self._failing.discard(name)
                log.info("backend %r: model list read again (%d models)", name, len(ids))
        finally:
            self._tried.add(name)
