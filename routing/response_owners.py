"""Who made each stored Responses API answer: a key continues (``previous_response_id``) only a response its own
team made, or its own key when it has no team, and cites (an input item's ``id``) only its items.

Teams often share one provider account behind a backend, and the provider keeps every stored response of the
account: without this record a key of one team could cite a response id another team's request stored and get
that conversation continued (its context, its tool results). The gateway records the owner of every Responses
answer it relays (``store`` not false), with the ids of its output items (and of the input items a listing shows its
owner), and of every conversation (the Responses API's ``conversation``: the provider prepends its items to the
request's input) a relayed answer was added to, and refuses a request citing a response, a conversation or an item
another owner made, with the 404 the provider gives for an id it does not know; the stored-response endpoints (``gateway.stored_responses``) serve
the owner only, at the backend and endpoint the record names. An id the gateway never relayed (made before it
was deployed, or directly at the provider) is not refused as a continuation: nothing says whose it is.

Stores, chosen like the policy store's: ``<data_dir>/responses.sqlite3`` (embedded; WAL, so the workers of one
machine share it), Redis (``redis.url``: ``pointsman:responses:owner:<id>``, with a TTL) or PostgreSQL
(``database.dsn``: the ``policy`` schema's ``response_owners``). Records are kept ``routing.response_owners_days``
(30: the provider's retention of stored responses) from the owner's last answer recorded under the id (a
conversation stays its owner's while in use); older ones are purged at open and hourly. Never on the request path
except for a Responses request: one write after its answer is sent, one read when it cites a previous response or
items by id (all of them in one query).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import orjson

from routing.store import SQLConnection

PREFIX = "pointsman:responses:owner:"
_CHUNK = 500
"""Ids per SQL statement (SQLite allows 32,766 parameters; far fewer keep each statement small)."""


class OwnerStoreUnavailable(Exception):
    """The store could not be read or written."""


class Stored:
    """Who made a stored response, and where it is stored."""

    __slots__ = ("owner", "backend", "endpoint")

    owner: Final[str]
    """``owner_of`` the request that made it."""
    backend: Final[str]
    """The backend that answered."""
    endpoint: Final[str]
    """The endpoint (base URL, ``.../v1``) of that backend that answered: where the provider keeps it (one server of
    a vLLM fleet)."""

    def __init__(self, owner: str, backend: str, endpoint: str) -> None:
        self.owner = owner
        self.backend = backend
        self.endpoint = endpoint


def owner_of(key: str, team: str | None) -> str:
    """The owner a request's answers are recorded under: its team, or its key when it has none."""
    return f"team:{team}" if team else f"key:{key}"


class ResponseOwners(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def record(self, ids: Sequence[str], stored: Stored) -> None:
        """Keep ``stored`` for each of ``ids`` (a response's and its items', a conversation's): the first owner of
        an id stays, and the same owner recording it again keeps it another retention period (a conversation in
        use outlives the provider's 30 days for a response); raises ``OwnerStoreUnavailable``."""

    async def find(self, ids: Sequence[str]) -> dict[str, Stored]:
        """The records of those of ``ids`` that have one; raises ``OwnerStoreUnavailable``."""


class SQLResponseOwners:
    """Owners in a SQL table: a SQLite file (embedded) or, on a ``DomainConnection``, PostgreSQL's ``policy``
    schema. Calls run in a thread, one at a time on the one connection."""

    def __init__(
        self, connect: Callable[[], SQLConnection], errors: tuple[type[Exception], ...], retention_s: float
    ) -> None:
        self._connect = connect
        self.retention_s = retention_s
        self._errors = errors
        self._conn: SQLConnection | None = None
        self._lock = threading.Lock()
        self._purged = 0.0

    async def open(self) -> None:
        await self._run(self._purge)

    async def close(self) -> None:
        def close() -> None:
            with self._lock:  # not while a call runs in another thread
                self._drop()

        await asyncio.to_thread(close)

    def _c(self) -> SQLConnection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        """Close the connection (a failed one too); the next call opens another."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*self._errors):
                conn.close()

    async def _run(self, fn: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            with self._lock:
                try:
                    return fn()
                except self._errors as exc:
                    self._drop()  # reconnect next time
                    raise OwnerStoreUnavailable(str(exc)) from exc

        return await asyncio.to_thread(guarded)

    def _purge(self) -> None:
        now = time.time()
        self._c().execute("DELETE FROM response_owners WHERE at < ?", (now - self.retention_s,))
        self._purged = now

    async def record(self, ids: Sequence[str], stored: Stored) -> None:
        def insert() -> None:
            now = time.time()
            self._c().executemany(
                "INSERT INTO response_owners (id, owner, backend, endpoint, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET at = excluded.at WHERE response_owners.owner = excluded.owner",
                [(i, stored.owner, stored.backend, stored.endpoint, now) for i in ids],
            )
            if now - self._purged > 3600:
                self._purge()

        await self._run(insert)

    async def find(self, ids: Sequence[str]) -> dict[str, Stored]:
        def select() -> dict[str, Stored]:
            found: dict[str, Stored] = {}
            since = time.time() - self.retention_s
            for at in range(0, len(ids), _CHUNK):
                chunk = list(ids[at : at + _CHUNK])
                rows = (
                    self._c()
                    .execute(
                        "SELECT id, owner, backend, endpoint FROM response_owners"
                        f" WHERE id IN ({', '.join('?' * len(chunk))}) AND at >= ?",
                        (*chunk, since),
                    )
                    .fetchall()
                )
                for row in rows:
                    found[str(row[0])] = Stored(str(row[1]), str(row[2]), str(row[3]))
            return found

        result: dict[str, Stored] = await self._run(select)
        return result


def sqlite_owners(path: str, retention_s: float) -> SQLResponseOwners:
    """The embedded store: ``path`` (a SQLite file, created with its table)."""

    def connect() -> SQLConnection:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS response_owners (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
            " backend TEXT NOT NULL, endpoint TEXT NOT NULL, at REAL NOT NULL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS response_owners_at ON response_owners (at)")
        return conn

    return SQLResponseOwners(connect, (sqlite3.Error, OSError), retention_s)


def postgres_owners(dsn: str, retention_s: float) -> SQLResponseOwners:
    """The shared store in PostgreSQL: the ``policy`` schema's ``response_owners`` (``pointsman db migrate``)."""
    import psycopg

    from accounting.pg_domain import DomainConnection, DomainSchemaBehind
    from routing.pg_schema import POLICY

    def connect() -> SQLConnection:
        return DomainConnection(dsn, POLICY)

    return SQLResponseOwners(connect, (psycopg.Error, DomainSchemaBehind, OSError), retention_s)


_RECORD = """
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v then
    redis.call('SET', k, ARGV[1], 'EX', ARGV[2])
  else
    local ok, rec = pcall(cjson.decode, v)
    if ok and type(rec) == 'table' and rec[1] == ARGV[3] then
      redis.call('EXPIRE', k, ARGV[2])
    end
  end
end
return 0
"""
"""Record each key's owner (``ARGV``: the record, its seconds, its owner) unless another owner has it; the same
owner's record is kept another retention period."""


class RedisResponseOwners:
    """Owners in Redis, shared by every replica: one key per response id, expiring after ``retention_s``."""

    def __init__(self, url: str, retention_s: float) -> None:
        import redis.asyncio as aioredis

        self.retention_s = max(1, int(retention_s))
        self._client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        self._record = self._client.register_script(_RECORD)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        await self._client.aclose()

    async def record(self, ids: Sequence[str], stored: Stored) -> None:
        from redis.exceptions import RedisError

        value = orjson.dumps([stored.owner, stored.backend, stored.endpoint])
        try:
            await self._record(keys=[PREFIX + i for i in ids], args=[value, self.retention_s, stored.owner])
        except (RedisError, OSError) as exc:
            raise OwnerStoreUnavailable(str(exc)) from exc

    async def find(self, ids: Sequence[str]) -> dict[str, Stored]:
        from redis.exceptions import RedisError

        try:
            raws = await self._client.mget([PREFIX + i for i in ids])
        except (RedisError, OSError) as exc:
            raise OwnerStoreUnavailable(str(exc)) from exc
        found: dict[str, Stored] = {}
        for i, raw in zip(ids, raws, strict=True):
            if raw is None:
                continue
            try:
                owner, backend, endpoint = orjson.loads(raw)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue  # not a record this version wrote
            found[i] = Stored(str(owner), str(backend), str(endpoint))
        return found
