"""Stored Responses API answers stay within their team (``routing.response_owners`` says why and where the record
lives): a request citing ``previous_response_id`` is checked against the recorded owner before it is routed, the
stored-response endpoints (``gateway.stored_responses``) serve only the owner, and each stored answer is recorded
once it has been sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gateway.errors import previous_response_not_found, response_not_found, response_owners_unavailable
from routing.response_owners import OwnerStoreUnavailable, ResponseOwners, Stored, owner_of

log = logging.getLogger("pointsman.responses")


class ResponseOwnership:
    def __init__(self, store: ResponseOwners, fail_closed: Callable[[], bool]) -> None:
        self.store = store
        self._fail_closed = fail_closed
        """``redis.on_unavailable`` is ``fail_closed`` (read from the config in force)."""
        self._pending: dict[str, Stored] = {}
        """Records being written: read before the store, so this process never misses its own latest answers."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False
        """The last call failed (a warning was logged; the next success logs the recovery)."""

    async def open(self) -> None:
        try:
            await self.store.open()
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "opening")

    async def close(self) -> None:
        """After the last requests: their records are written (for up to 5 s), then the store is closed."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        await self.store.close()

    async def _get(self, response_id: str) -> Stored | None:
        """The record of ``response_id`` (raises ``OwnerStoreUnavailable``)."""
        pending = self._pending.get(response_id)
        if pending is not None:
            return pending
        try:
            found = await self.store.get(response_id)
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "reading")
            raise
        self._recovered()
        return found

    async def check(self, doc: dict[str, Any], key: str, team: str | None) -> None:
        """Raise the provider's 404 when ``doc`` cites a previous response another owner made."""
        cited = doc.get("previous_response_id")
        if not isinstance(cited, str):
            return
        try:
            stored = await self._get(cited)
        except OwnerStoreUnavailable:
            if self._fail_closed():
                raise response_owners_unavailable() from None
            return
        if stored is not None and stored.owner != owner_of(key, team):
            raise previous_response_not_found(cited[:256])

    async def owned(self, response_id: str, key: str, team: str | None) -> Stored:
        """The record of a stored response ``key`` may read or delete: its team's (or its own) response that the
        gateway relayed; else the provider's 404 (an id never relayed has no known owner, nor a known backend)."""
        try:
            stored = await self._get(response_id)
        except OwnerStoreUnavailable:
            raise response_owners_unavailable() from None
        if stored is None or stored.owner != owner_of(key, team):
            raise response_not_found(response_id[:256])
        return stored

    def record_soon(
        self, response_id: str | None, key: str, team: str | None, backend: str, endpoint: str
    ) -> None:
        """Keep who made ``response_id`` and where it is stored (nothing for None: an answer the provider does not
        store), in a task of its own: the request was accounted already, and nothing may await after that
        (``InferenceHandler``); until written it is read from memory here."""
        if response_id is None:
            return
        stored = Stored(owner_of(key, team), backend, endpoint)
        self._pending[response_id] = stored
        task = asyncio.get_running_loop().create_task(self._record(response_id, stored))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, response_id: str, stored: Stored) -> None:
        try:
            await self.store.record(response_id, stored)
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "writing")
            return
        finally:
            self._pending.pop(response_id, None)
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
