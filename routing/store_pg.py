"""The routing policy in PostgreSQL (``database: {backend: postgres, dsn}``), shared by every replica.

``SQLitePolicyStore``'s statements on a ``DomainConnection`` in the database's ``policy`` schema
(``routing.pg_schema.POLICY``): an append runs in a transaction holding the domain's advisory lock (compare the
head, insert the next version and the secrets it revokes), so concurrent writers on different replicas never both get the same number,
and history is the same append-only list for all. After an append the store sends ``NOTIFY
pointsman_policy``; ``wait_change`` listens on its own connection, so other replicas install a change as soon
as it is committed, and at the latest after ``routing.sync_interval_s`` (the sync task compares head versions
then whether or not a notification arrived). Database errors are ``StoreUnavailable`` (503 on the admin API;
the sync task reconnects).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg

from accounting.pg_domain import DomainConnection
from routing.pg_schema import POLICY
from routing.store import PolicyVersion, Revocation, Revoke, SQLitePolicyStore, StoreUnavailable

CHANNEL = "pointsman_policy"


class PostgresPolicyStore(SQLitePolicyStore):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self._listener: psycopg.Connection[Any] | None = None
        self._listen_lock = threading.Lock()

    def _open(self) -> None:
        try:
            self._conn = DomainConnection(self.path, POLICY)
            listener = psycopg.connect(self.path, connect_timeout=5, autocommit=True)
            listener.execute(f"LISTEN {CHANNEL}")
            self._listener = listener
        except psycopg.OperationalError as exc:
            self._close()
            raise StoreUnavailable(f"the policy database is unreachable: {exc}") from exc

    def _close(self) -> None:
        super()._close()
        with self._listen_lock:  # not while a wait runs in another thread (it ends within its timeout)
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()

    def _head(self) -> int:
        try:
            return super()._head()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the policy database failed: {exc}") from exc

    def _get(self, version: int) -> PolicyVersion | None:
        try:
            return super()._get(version)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the policy database failed: {exc}") from exc

    def _latest(self) -> PolicyVersion | None:
        try:
            return super()._latest()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the policy database failed: {exc}") from exc

    def _history(self, limit: int) -> list[PolicyVersion]:
        try:
            return super()._history(limit)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the policy database failed: {exc}") from exc

    def _revocations(self) -> dict[str, Revocation]:
        try:
            return super()._revocations()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the policy database failed: {exc}") from exc

    def _append(
        self,
        doc: dict[str, Any],
        source: str,
        summary: str,
        expect: int | None,
        config_hash: str | None,
        revoke: Revoke | None,
    ) -> PolicyVersion:
        try:
            v = super()._append(doc, source, summary, expect, config_hash, revoke)
            with self._lock:
                self._c().execute("SELECT pg_notify(?, ?)", (CHANNEL, str(v.version)))
            return v
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the policy database failed: {exc}") from exc

    async def wait_change(self, wait_s: float) -> None:
        await asyncio.to_thread(self._wait, wait_s)

    def _wait(self, wait_s: float) -> None:
        with self._listen_lock:
            if self._listener is None:
                raise StoreUnavailable("the policy store is not open")
            try:
                for _ in self._listener.notifies(timeout=wait_s, stop_after=1):
                    pass
            except psycopg.Error as exc:
                raise StoreUnavailable(f"the policy database failed: {exc}") from exc
