"""Responses API continuations stay within their team (``routing.response_owners`` says why and where the record
lives): a request citing ``previous_response_id`` is checked against the recorded owner before it is routed, and
the id of each stored answer is recorded once the answer has been sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gateway.errors import previous_response_not_found, response_owners_unavailable
from routing.response_owners import OwnerStoreUnavailable, ResponseOwners, owner_of

log = logging.getLogger("pointsman.responses")


class ResponseOwnership:
    def __init__(self, store: ResponseOwners, fail_closed: Callable[[], bool]) -> None:
        self.store = store
        self._fail_closed = fail_closed
        """``redis.on_unavailable`` is ``fail_closed`` (read from the config in force)."""
        self._pending: set[asyncio.Task[None]] = set()
        self._down = False
        """The last call failed (a warning was logged; the next success logs the recovery)."""

    async def open(self) -> None:
        try:
            await self.store.open()
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "opening")

    async def close(self) -> None:
        """After the last requests: their records are written (for up to 5 s), then the store is closed."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=5)
        await self.store.close()

    async def check(self, doc: dict[str, Any], key: str, team: str | None) -> None:
        """Raise the provider's 404 when ``doc`` cites a previous response another owner made."""
        cited = doc.get("previous_response_id")
        if not isinstance(cited, str):
            return
        try:
            owner = await self.store.owner(cited)
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "reading")
            if self._fail_closed():
                raise response_owners_unavailable() from None
            return
        self._recovered()
        if owner is not None and owner != owner_of(key, team):
            raise previous_response_not_found(cited[:256])

    def record_soon(self, response_id: str | None, key: str, team: str | None) -> None:
        """Keep who made ``response_id`` (nothing for None: an answer the provider does not store), in a task of
        its own: the request was accounted already, and nothing may await after that (``InferenceHandler``); the
        answer has been sent, and an id nobody else has seen yet cannot be cited by another team meanwhile."""
        if response_id is None:
            return
        task = asyncio.get_running_loop().create_task(self._record(response_id, owner_of(key, team)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _record(self, response_id: str, owner: str) -> None:
        try:
            await self.store.record(response_id, owner)
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "writing")
            return
        self._recovered()

    def _failed(self, exc: OwnerStoreUnavailable, doing: str) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "the record of Responses API answer owners failed (%s: %s): continuations are %s until it is back",
                doing,
                exc,
                "refused (503)" if self._fail_closed() else "not checked",
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.info("the record of Responses API answer owners is reachable again")
