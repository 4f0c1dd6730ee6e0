"""Stored Responses API answers stay within their team (``routing.response_owners`` says why and where the record
lives): a request citing ``previous_response_id``, a ``conversation`` or stored items (an input item with an ``id``)
is checked against the recorded owners before it is routed, the stored-response endpoints (``gateway.stored_responses``) serve only the
owner, and each stored answer is recorded, with its items, once it has been sent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway.errors import (
    conversation_not_found,
    item_not_found,
    previous_response_not_found,
    response_not_found,
    response_owners_unavailable,
)
from routing.response_owners import OwnerStoreUnavailable, ResponseOwners, Stored, owner_of
from wire.answer import conversation_id, item_ids
from wire.tasks import cancel_requested

log = logging.getLogger("pointsman.responses")

MAX_UNWRITTEN = 100_000
"""Ids kept in memory while their records cannot be written (the store down); past it the oldest are dropped (those
responses are then left unchecked, as ids the gateway never relayed), with a warning."""
_RETRY_S = (1.0, 30.0)
"""The first and the longest wait between attempts to write the records kept in memory (doubling)."""


class ResponseOwnership:
    def __init__(self, store: ResponseOwners, fail_closed: Callable[[], bool]) -> None:
        self.store = store
        self._fail_closed = fail_closed
        """``redis.on_unavailable`` is ``fail_closed`` (read from the config in force)."""
        self._pending: dict[str, Stored] = {}
        """Records being written, by id: read before the store, so this process never misses its own latest
        answers."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False
        """The last call failed (a warning was logged; the next success logs the recovery)."""
        self._unwritten: deque[tuple[Sequence[str], Stored]] = deque()
        """Records whose write failed, oldest first (their ids stay in ``_pending``): written again until the store
        takes them."""
        self._unwritten_ids = 0
        self._retrying: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            await self.store.open()
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "opening")

    async def close(self) -> None:
        """After the last requests: their records are written (for up to 5 s, with those kept from an outage), then
        the store is closed; records still unwritten are named in a warning."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        if self._unwritten:
            with contextlib.suppress(TimeoutError, OwnerStoreUnavailable):
                async with asyncio.timeout(5):
                    await self._write_unwritten()
        if self._unwritten_ids:
            log.warning(
                "closing with %d Responses API answer and item ids whose owner could not be recorded: they are left"
                " unchecked",
                self._unwritten_ids,
            )
        await self.store.close()

    async def _find(self, ids: Sequence[str]) -> dict[str, Stored]:
        """The records of those of ``ids`` that have one (raises ``OwnerStoreUnavailable``)."""
        pending = self._pending
        found = {i: pending[i] for i in ids if i in pending}
        asked = [i for i in ids if i not in found]
        if not asked:
            return found
        try:
            found |= await self.store.find(asked)
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "reading")
            raise
        self._recovered()
        return found

    async def check(self, doc: dict[str, Any], key: str, team: str | None) -> None:
        """Raise the provider's 404 when ``doc`` cites a previous response, a conversation or an item (an input
        item's ``id``) another owner made (a conversation: another owner's requests were added to it)."""
        cited = doc.get("previous_response_id")
        previous = cited if isinstance(cited, str) else None
        conv = conversation_id(doc)
        items = item_ids(doc.get("input"))
        if previous is None and conv is None and not items:
            return
        ids = list(dict.fromkeys([*(i for i in (previous, conv) if i is not None), *items]))
        try:
            found = await self._find(ids)
        except OwnerStoreUnavailable:
            if self._fail_closed():
                raise response_owners_unavailable() from None
            return
        if not found:
            return
        owner = owner_of(key, team)
        if previous is not None and (stored := found.get(previous)) is not None and stored.owner != owner:
            raise previous_response_not_found(previous[:256])
        if conv is not None and (stored := found.get(conv)) is not None and stored.owner != owner:
            raise conversation_not_found(conv[:256])
        for i in items:
            stored = found.get(i)
            if stored is not None and stored.owner != owner:
                raise item_not_found(i[:256])

    async def owned(self, response_id: str, key: str, team: str | None) -> Stored:
        """The record of a stored response ``key`` may read or delete: its team's (or its own) response that the
        gateway relayed; else the provider's 404 (an id never relayed has no known owner, nor a known backend)."""
        try:
            stored = (await self._find([response_id])).get(response_id)
        except OwnerStoreUnavailable:
            raise response_owners_unavailable() from None
        if stored is None or stored.owner != owner_of(key, team):
            raise response_not_found(response_id[:256])
        return stored

    def record_soon(self, ids: Sequence[str], stored: Stored) -> None:
        """Keep who made the stored response or items ``ids`` and where they are stored (nothing for none: an answer
        the provider does not store), in a task of its own: the request was accounted already, and nothing may
        await after that (``InferenceHandler``); until written they are read from memory here."""
        if not ids:
            return
        for i in ids:
            self._pending.setdefault(i, stored)
        task = asyncio.get_running_loop().create_task(self._record(ids, stored))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, ids: Sequence[str], stored: Stored) -> None:
        try:
            await self.store.record(ids, stored)
        except OwnerStoreUnavailable as exc:
            self._failed(exc, "writing")
            self._keep(ids, stored)
            return
        self._forget(ids, stored)
        self._recovered()

    def _forget(self, ids: Sequence[str], stored: Stored) -> None:
        """Stop reading ``stored`` for ``ids`` from memory (written to the store, or dropped)."""
        for i in ids:
            if self._pending.get(i) is stored:
                del self._pending[i]

    def _keep(self, ids: Sequence[str], stored: Stored) -> None:
        """Keep a record the store did not take (still read from memory here) and write it again later; past
        ``MAX_UNWRITTEN`` ids the oldest are dropped."""
        self._unwritten.append((ids, stored))
        self._unwritten_ids += len(ids)
        dropped = 0
        while self._unwritten_ids > MAX_UNWRITTEN and len(self._unwritten) > 1:
            old_ids, old = self._unwritten.popleft()
            self._unwritten_ids -= len(old_ids)
            self._forget(old_ids, old)
            dropped += len(old_ids)
        if dropped:
            log.warning(
                "%d Responses API answer and item ids whose owner could not be recorded were dropped (more than %d"
                " waiting): they are left unchecked",
                dropped,
                MAX_UNWRITTEN,
            )
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        """Write the kept records until the store takes them all, waiting longer after each failure."""
        wait = _RETRY_S[0]
        while self._unwritten:
            if cancel_requested():  # a cancellation the store's Redis client swallowed (wire.tasks)
                raise asyncio.CancelledError
            await asyncio.sleep(wait)
            try:
                await self._write_unwritten()
            except OwnerStoreUnavailable:
                wait = min(wait * 2, _RETRY_S[1])
                continue
            self._recovered()

    async def _write_unwritten(self) -> None:
        """Write the kept records, oldest first (raises ``OwnerStoreUnavailable`` at the first that fails)."""
        while self._unwritten:
            entry = self._unwritten[0]
            ids, stored = entry
            await self.store.record(ids, stored)
            if self._unwritten and self._unwritten[0] is entry:  # (not dropped meanwhile)
                self._unwritten.popleft()
                self._unwritten_ids -= len(ids)
            self._forget(ids, stored)

    def _failed(self, exc: OwnerStoreUnavailable, doing: str) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "the record of Responses API answer owners failed (%s: %s): continuations are %s until it is back"
                " (the owners of this replica's new answers are kept in memory and written then)",
                doing,
                exc,
                "refused (503)" if self._fail_closed() else "not checked",
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.info("the record of Responses API answer owners is reachable again")
