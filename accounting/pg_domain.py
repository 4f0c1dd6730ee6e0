"""PostgreSQL for the stores that replicas share beyond the ledger (shadow pairs, the routing policy, approvals).

Each domain owns its persistence: its own PostgreSQL schema (``shadow``, ``policy``, ``approvals``; the ledger
keeps ``public``, see ``accounting.pg_schema``) with its own ``schema_migrations`` and its own versioned
migration list next to the code that uses it. ``migrate`` applies a list under an advisory lock (replicas and
``pointsman db migrate`` may race); ``version`` reads where a domain stands, for the startup check.

``DomainConnection`` lets a store written for SQLite run its statements on PostgreSQL unchanged: ``?``
placeholders become ``%s``, ``INSERT OR IGNORE`` becomes ``INSERT ... ON CONFLICT DO NOTHING``, and ``BEGIN
IMMEDIATE`` (SQLite's one-writer transaction) becomes ``BEGIN`` plus the domain's transaction-scoped advisory
lock, so read-then-write transactions (policy appends, leases) stay serialized across replicas. psycopg is
imported here, and this module only when a store is configured for PostgreSQL.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

Migration = tuple[int, str, Sequence[str]]
"""(version, name, statements) run in the domain's schema."""


class DomainSchemaBehind(RuntimeError):
    """The database's schema for a domain is older than this version's (``pointsman db migrate``)."""


@dataclass(frozen=True, slots=True)
class Domain:
    schema: str
    """The PostgreSQL schema the domain's tables live in."""
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        return self.migrations[-1][0]

    @property
    def lock_key(self) -> int:
        """Advisory-lock key of the domain's schema changes and ``BEGIN IMMEDIATE`` transactions."""
        return zlib.crc32(f"pointsman:{self.schema}".encode())


def version(conn: Any, domain: Domain) -> int:
    """The newest migration applied to ``domain`` (0: none)."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{domain.schema}.schema_migrations",)
    ).fetchone()
    if not row[0]:
        return 0
    return int(
        conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {domain.schema}.schema_migrations").fetchone()[0]
    )


def migrate(conn: Any, domain: Domain, upto: int | None = None) -> list[str]:
    """Apply ``domain``'s migrations not applied yet, up to ``upto`` (one transaction); returns what was done."""
    upto = domain.latest if upto is None else upto
    done: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (domain.lock_key,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {domain.schema}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {domain.schema}.schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        applied = {r[0] for r in conn.execute(f"SELECT version FROM {domain.schema}.schema_migrations")}
        conn.execute(f"SET LOCAL search_path TO {domain.schema}")
        for v, name, statements in domain.migrations:
            if v in applied or v > upto:
                continue
            for sql in statements:
                conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (v, name))
            done.append(f"{domain.schema} {v}: {name}")
    return done


def _translate(sql: str) -> str:
    s = sql.strip()
    if s.upper().startswith("INSERT OR IGNORE INTO"):
        s = "INSERT INTO" + s[len("INSERT OR IGNORE INTO") :] + " ON CONFLICT DO NOTHING"
    return re.sub(r"\?", "%s", s)


class _Result:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall()) if self._cur.description is not None else []

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class DomainConnection:
    """A psycopg connection in a domain's schema that takes SQLite-dialect statements (see the module)."""

    def __init__(self, dsn: str, domain: Domain, connect_timeout: int = 5) -> None:
        conn = psycopg.connect(dsn, connect_timeout=connect_timeout, autocommit=True)
        try:
            have = version(conn, domain)
            if have != domain.latest:
                raise DomainSchemaBehind(
                    f"{domain.schema} schema version {have} of {domain.latest}: run `pointsman db migrate`"
                )
            conn.execute(f"SET search_path TO {domain.schema}")
            conn.execute("SET synchronous_commit = on")
        except BaseException:
            conn.close()
            raise
        self.raw = conn
        self.domain = domain

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        if sql.strip().upper() == "BEGIN IMMEDIATE":
            self.raw.execute("BEGIN")
            return _Result(self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (self.domain.lock_key,)))
        return _Result(self.raw.execute(_translate(sql), tuple(args)))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            self.raw.cursor().executemany(_translate(sql), batch)

    def close(self) -> None:
        self.raw.close()


def reconnecting(dsn: str, domain: Domain) -> tuple[Callable[[], DomainConnection], Callable[[], None]]:
    """``(get, drop)``: ``get`` returns the open connection or opens one; ``drop`` closes it (after an error),
    so the next ``get`` reconnects."""
    held: list[DomainConnection] = []

    def get() -> DomainConnection:
        if held and not held[0].closed:
            return held[0]
        held.clear()
        held.append(DomainConnection(dsn, domain))
        return held[0]

    def drop() -> None:
        while held:
            c = held.pop()
            try:
                c.close()
            except psycopg.Error:
                pass

    return get, drop
