"""The per-process view of approvals: a cache the request path reads with dict lookups, re-read in the background.

Approvals made through another worker or replica take effect here within ``refresh_s``; one made through this
process at once. When the store cannot be read the last known approvals stay; until the first successful read
nothing is known (``known`` is False) and every purpose treats every subject as not approved (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from accounting.approvals.store import PURPOSES, TEAM, Approval, ApprovalStore, Subject

log = logging.getLogger("pointsman.approvals")


class ApprovalBook:
    """See the module docstring. One per process; started and closed by its owner."""

    def __init__(self, store: ApprovalStore, refresh_s: float, purposes: Sequence[str] = PURPOSES) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.purposes = tuple(purposes)
        self.known = False
        """Whether the store has been read at least once."""
        self.last_error: str | None = None
        self._current: dict[str, dict[Subject, Approval]] = {p: {} for p in self.purposes}
        self._decided: dict[str, dict[Subject, bool]] = {p: {} for p in self.purposes}
        self._teams: dict[str, frozenset[str]] = {p: frozenset() for p in self.purposes}
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[dict[str, dict[Subject, Approval]]] = []
        """One overlay per read in flight: the decisions made through this book while that read ran."""

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.refresh()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.store.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:  # a background loop must keep running
                log.exception("approvals: refresh failed")

    async def refresh(self) -> None:
        """Re-read every purpose; when the store is unreachable the last known approvals stay.

        A decision made through this book while the read runs may be missing from what the read returns (it
        began before the write), so it is laid over the read: a revocation is never undone, even for one
        refresh interval, by a read that started before it."""
        overlay: dict[str, dict[Subject, Approval]] = {}
        self._in_flight.append(overlay)
        try:
            found = await asyncio.to_thread(self._read_all)
        except Exception as exc:  # Redis down, SQLite locked: keep what we know
            if self.last_error != str(exc):
                log.warning("approvals: could not read approvals: %s", exc)
            self.last_error = str(exc)
            return
        finally:
            self._in_flight.remove(overlay)
        self.last_error = None
        for purpose, approvals in found.items():
            self._install(purpose, {**approvals, **overlay.get(purpose, {})})
        self.known = True

    def _read_all(self) -> dict[str, dict[Subject, Approval]]:
        return {p: self.store.approvals(p) for p in self.purposes}

    def _install(self, purpose: str, approvals: dict[Subject, Approval]) -> None:
        self._current[purpose] = approvals
        self._decided[purpose] = {s: a.approved for s, a in approvals.items()}
        self._teams[purpose] = frozenset(
            name for (scope, name), a in approvals.items() if scope == TEAM and a.approved
        )

    # -- reading (request path: no I/O) ------------------------------------------------------------------------
    def decided(self, purpose: str, scope: str, name: str | None) -> bool | None:
        """The subject's current decision (True approved, False revoked), or None when none is recorded."""
        if name is None:
            return None
        return self._decided[purpose].get((scope, name))

    def approved_teams(self, purpose: str) -> frozenset[str]:
        return self._teams[purpose]

    def current(self, purpose: str) -> dict[Subject, Approval]:
        """Every subject's current decision for ``purpose`` (as last read)."""
        return self._current[purpose]

    def get(self, purpose: str, scope: str, name: str) -> Approval | None:
        return self._current[purpose].get((scope, name))

    # -- writing -------------------------------------------------------------------------------------------------
    async def set(
        self, purpose: str, scope: str, name: str, approved: bool, actor: str, note: str | None
    ) -> Approval:
        """Record a decision (in force in this process at once, elsewhere within ``refresh_s``)."""
        a = await asyncio.to_thread(
            self.store.set_approval, purpose, scope, name, approved, actor, note, time.time()
        )
        self._install(purpose, {**self._current[purpose], a.subject: a})
        for overlay in self._in_flight:
            overlay.setdefault(purpose, {})[a.subject] = a
        return a

    async def history(self, purpose: str, scope: str, name: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.store.approval_history, purpose, scope, name)
