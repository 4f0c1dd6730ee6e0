"""Persistence of the routing policy: an append-only list of versions behind a small interface.

A *policy document* is a JSON object (``routes``, ``models``, ``backends``, ``keys``; the gateway decides
what goes in it). Every change appends a new version; rollback appends a copy of an old one, so history is
never rewritten. Beside the versions, each store keeps the **revoked client key secrets** (SHA-256 digests,
never the secrets): an append records the digests its change revokes in the same transaction, and they are
never forgotten — not by a rollback, not by importing an edited config file. Implementations:

- ``SQLitePolicyStore`` (embedded default): one file under ``server.data_dir``, shared by the workers of one
  host; other workers notice a change by polling the head version.
- ``RedisPolicyStore`` (``routing.store_redis``, with ``redis.url``): shared by every replica; a change is
  published on a channel and replicas also poll the head version, so one that missed a message catches up.
- ``PostgresPolicyStore`` (``routing.store_pg``, with ``database: {backend: postgres}``; wins over Redis):
  the same tables in the database's ``policy`` schema; a change is announced with ``NOTIFY`` and replicas
  also poll the head version.

Both are called only from the admin API and a background sync task, never on the request path.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

import orjson

from routing.errors import RoutingError


class PolicyVersion:
    """One stored version of the routing policy document."""

    __slots__ = ("version", "created_at", "source", "summary", "doc")

    version: Final[int]
    created_at: Final[float]
    """Unix time."""
    source: Final[str]
    """``config`` (imported from the config file), ``admin`` or ``rollback``."""
    summary: Final[str]
    doc: Final[dict[str, Any]]

    def __init__(
        self, version: int, created_at: float, source: str, summary: str, doc: dict[str, Any]
    ) -> None:
        self.version = version
        self.created_at = created_at
        self.source = source
        self.summary = summary
        self.doc = doc


class Revocation:
    """A client key secret revoked through the admin API (its key deleted, or its secret rotated away)."""

    __slots__ = ("key_sha256", "name", "version", "revoked_at")

    key_sha256: Final[str]
    name: Final[str]
    """The key it belonged to."""
    version: Final[int]
    """The policy version that revoked it."""
    revoked_at: Final[float]
    """Unix time."""

    def __init__(self, key_sha256: str, name: str, version: int, revoked_at: float) -> None:
        self.key_sha256 = key_sha256
        self.name = name
        self.version = version
        self.revoked_at = revoked_at

    def _key(self) -> tuple[str, str, int, float]:
        """What it is compared and hashed by."""
        return (self.key_sha256, self.name, self.version, self.revoked_at)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Revocation):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


Revoke = Mapping[str, str]
"""Secrets an append revokes: SHA-256 digest -> the name of the key it belonged to."""


class VersionConflict(Exception):
    """Another writer appended first; re-read and try again."""

    def __init__(self, head: int) -> None:
        super().__init__(f"policy head moved to version {head}")
        self.head = head


class StoreUnavailable(RoutingError):
    status = 503
    type = "server_error"
    code = "policy_store_unavailable"


class PolicyStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def head(self) -> int:
        """The newest version number (0 when empty)."""

    async def get(self, version: int) -> PolicyVersion | None: ...

    async def latest(self) -> PolicyVersion | None: ...

    async def history(self, limit: int) -> list[PolicyVersion]:
        """Newest first."""

    async def append(
        self, doc: dict[str, Any], source: str, summary: str, expect: int, revoke: Revoke | None = None
    ) -> PolicyVersion:
        """Append a version if the head is still ``expect``; else raise ``VersionConflict``. ``revoke``: the
        secrets this version revokes, recorded with it (both or neither)."""

    async def revocations(self) -> dict[str, Revocation]:
        """Every revoked secret, by digest."""

    async def seed(
        self, doc: dict[str, Any], config_hash: str, summary: str, revoke: Revoke | None = None
    ) -> PolicyVersion:
        """At startup: append ``doc`` as a ``config`` version unless the last imported config file had the same
        hash (an unchanged file keeps the admin changes made since); returns the newest version. ``revoke``: secrets
        recorded as revoked with the appended version (an emptied store gets back the revocations a gateway
        knew); ignored when nothing is appended."""

    async def wait_change(self, wait_s: float) -> None:
        """Return when a change may have happened, or after ``wait_s`` seconds."""


def dumps(doc: dict[str, Any]) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _row(r: tuple[Any, ...]) -> PolicyVersion:
    return PolicyVersion(int(r[0]), float(r[1]), str(r[2]), str(r[3]), orjson.loads(r[4]))


class SQLConnection(Protocol):
    """What the SQLite-written stores need of a connection: ``sqlite3.Connection``, or
    ``accounting.pg_domain.DomainConnection`` (the same statements on PostgreSQL)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...

    def close(self) -> None: ...


class SQLitePolicyStore:
    """Embedded store: ``<data_dir>/policy.sqlite3`` (WAL mode, so several worker processes share it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: SQLConnection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS policy_versions (version INTEGER PRIMARY KEY, created_at REAL NOT NULL,"
            " source TEXT NOT NULL, summary TEXT NOT NULL, doc TEXT NOT NULL)"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS policy_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS revoked_keys (key_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " version INTEGER NOT NULL, revoked_at REAL NOT NULL)"
        )
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:  # not while a query runs in another thread
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def _c(self) -> SQLConnection:
        if self._conn is None:
            raise StoreUnavailable("the policy store is not open")
        return self._conn

    async def head(self) -> int:
        return await asyncio.to_thread(self._head)

    def _head(self) -> int:
        with self._lock:
            return int(
                self._c().execute("SELECT COALESCE(MAX(version), 0) FROM policy_versions").fetchone()[0]
            )

    async def get(self, version: int) -> PolicyVersion | None:
        return await asyncio.to_thread(self._get, version)

    def _get(self, version: int) -> PolicyVersion | None:
        with self._lock:
            r = (
                self._c()
                .execute(
                    "SELECT version, created_at, source, summary, doc FROM policy_versions WHERE version = ?",
                    (version,),
                )
                .fetchone()
            )
        return None if r is None else _row(r)

    async def latest(self) -> PolicyVersion | None:
        return await asyncio.to_thread(self._latest)

    def _latest(self) -> PolicyVersion | None:
        with self._lock:
            r = (
                self._c()
                .execute(
                    "SELECT version, created_at, source, summary, doc FROM policy_versions ORDER BY version DESC LIMIT 1"
                )
                .fetchone()
            )
        return None if r is None else _row(r)

    async def history(self, limit: int) -> list[PolicyVersion]:
        return await asyncio.to_thread(self._history, limit)

    def _history(self, limit: int) -> list[PolicyVersion]:
        with self._lock:
            rows = (
                self._c()
                .execute(
                    "SELECT version, created_at, source, summary, doc FROM policy_versions ORDER BY version DESC LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [_row(r) for r in rows]

    async def append(
        self, doc: dict[str, Any], source: str, summary: str, expect: int, revoke: Revoke | None = None
    ) -> PolicyVersion:
        return await asyncio.to_thread(self._append, doc, source, summary, expect, None, revoke)

    async def seed(
        self, doc: dict[str, Any], config_hash: str, summary: str, revoke: Revoke | None = None
    ) -> PolicyVersion:
        return await asyncio.to_thread(self._append, doc, "config", summary, None, config_hash, revoke)

    async def revocations(self) -> dict[str, Revocation]:
        return await asyncio.to_thread(self._revocations)

    def _revocations(self) -> dict[str, Revocation]:
        with self._lock:
            rows = (
                self._c().execute("SELECT key_sha256, name, version, revoked_at FROM revoked_keys").fetchall()
            )
        return {str(r[0]): Revocation(str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows}

    def _append(
        self,
        doc: dict[str, Any],
        source: str,
        summary: str,
        expect: int | None,
        config_hash: str | None,
        revoke: Revoke | None,
    ) -> PolicyVersion:
        with self._lock:
            c = self._c()
            c.execute("BEGIN IMMEDIATE")
            try:
                head = int(c.execute("SELECT COALESCE(MAX(version), 0) FROM policy_versions").fetchone()[0])
                if expect is not None and head != expect:
                    raise VersionConflict(head)
                if config_hash is not None and head > 0:
                    r = c.execute("SELECT value FROM policy_meta WHERE name = 'config_hash'").fetchone()
                    if r is not None and r[0] == config_hash:
                        latest = c.execute(
                            "SELECT version, created_at, source, summary, doc FROM policy_versions WHERE version = ?",
                            (head,),
                        ).fetchone()
                        c.execute("COMMIT")
                        return _row(latest)
                v = PolicyVersion(head + 1, time.time(), source, summary, doc)
                c.execute(
                    "INSERT INTO policy_versions (version, created_at, source, summary, doc) VALUES (?, ?, ?, ?, ?)",
                    (v.version, v.created_at, v.source, v.summary, dumps(doc)),
                )
                if revoke:
                    c.executemany(
                        "INSERT OR IGNORE INTO revoked_keys (key_sha256, name, version, revoked_at) VALUES (?, ?, ?, ?)",
                        [(digest, name, v.version, v.created_at) for digest, name in sorted(revoke.items())],
                    )
                if config_hash is not None:
                    c.execute(
                        "INSERT INTO policy_meta (name, value) VALUES ('config_hash', ?)"
                        " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                        (config_hash,),
                    )
                c.execute("COMMIT")
                return v
            except BaseException:
                c.execute("ROLLBACK")
                raise

    async def wait_change(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
