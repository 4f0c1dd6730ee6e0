"""What an approval is, where approvals persist (the ``ApprovalStore`` protocol), and its embedded SQLite form.

An approval is a decision for one purpose (``capture``, ``third_party``) about one subject: a team, or a single
client key (scope ``team`` or ``key``). Each decision replaces the subject's current one and is appended to its
history (``approved`` or ``revoked``, who, when, a note).

``SqliteApprovals`` keeps them in two tables of one WAL-mode SQLite file (the capture store's file by default:
``<server.data_dir>/capture.sqlite3``), ``approval_state`` and ``approval_events``. Files written before
approvals had purposes hold capture approvals in ``approvals`` / ``approval_history``; opening such a file moves
those rows over (purpose ``capture``, scope ``team``) in one transaction and drops the old tables. Each call opens
its own connection, so one store is safe to share between threads and between the worker processes of a host.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Protocol

CAPTURE = "capture"
"""Purpose: a team's (or key's) traffic may be captured for datasets."""
THIRD_PARTY = "third_party"
"""Purpose: a team's (or key's) request data may be processed by third-party backends."""
PURPOSES = (CAPTURE, THIRD_PARTY)
TEAM = "team"
KEY = "key"
SCOPES = (TEAM, KEY)

Subject = tuple[str, str]
"""(scope, name): ``("team", "growth")`` or ``("key", "batch")``."""


class Approval:
    """One subject's decision for one purpose: approved or revoked, by whom, when."""

    __slots__ = ("purpose", "scope", "name", "approved", "actor", "at", "note")

    purpose: Final[str]
    scope: Final[str]
    """``team`` or ``key``."""
    name: Final[str]
    """The team's or key's name."""
    approved: Final[bool]
    actor: Final[str]
    """Who approved (or revoked) it."""
    at: Final[float]
    """Unix time of that decision."""
    note: Final[str | None]

    def __init__(
        self,
        purpose: str,
        scope: str,
        name: str,
        approved: bool,
        actor: str,
        at: float,
        note: str | None = None,
    ) -> None:
        self.purpose = purpose
        self.scope = scope
        self.name = name
        self.approved = approved
        self.actor = actor
        self.at = at
        self.note = note

    def _key(self) -> tuple[str, str, str, bool, str, float, str | None]:
        """What it is compared and hashed by."""
        return (self.purpose, self.scope, self.name, self.approved, self.actor, self.at, self.note)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Approval):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def subject(self) -> Subject:
        return (self.scope, self.name)

    @property
    def action(self) -> str:
        return "approved" if self.approved else "revoked"

    def as_dict(self) -> dict[str, Any]:
        """``{<scope>: name, approved, actor, at, note}`` (``team`` or ``key`` as the subject's field)."""
        return {
            self.scope: self.name,
            "approved": self.approved,
            "actor": self.actor,
            "at": self.at,
            "note": self.note,
        }

    def event(self) -> dict[str, Any]:
        """The decision as a history entry."""
        return {"action": self.action, "actor": self.actor, "at": self.at, "note": self.note}


class ApprovalStore(Protocol):
    """Where approvals persist: embedded SQLite, Redis (shared by replicas), or any shared database."""

    def approvals(self, purpose: str) -> dict[Subject, Approval]:
        """Every subject's current decision for ``purpose``."""

    def set_approval(
        self, purpose: str, scope: str, name: str, approved: bool, actor: str, note: str | None, at: float
    ) -> Approval:
        """Record a decision (replacing the subject's current one) and append it to the subject's history."""

    def approval_history(self, purpose: str, scope: str, name: str) -> list[dict[str, Any]]:
        """The subject's decisions, oldest first: ``{action, actor, at, note}``."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_state (
    purpose TEXT NOT NULL,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    approved INTEGER NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    note TEXT,
    PRIMARY KEY (purpose, scope, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS approval_events (
    id INTEGER PRIMARY KEY,
    purpose TEXT NOT NULL,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS approval_events_subject ON approval_events (purpose, scope, subject, id);
"""


def read_approvals(conn: Any, purpose: str) -> dict[Subject, Approval]:
    """Every subject's current decision, from ``approval_state`` (SQLite, or PostgreSQL through
    ``accounting.pg_domain.DomainConnection``)."""
    rows = conn.execute(
        "SELECT scope, subject, approved, actor, at, note FROM approval_state WHERE purpose = ?",
        (purpose,),
    ).fetchall()
    return {(r[0], r[1]): Approval(purpose, r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows}


def read_history(conn: Any, purpose: str, scope: str, name: str) -> list[dict[str, Any]]:
    """A subject's decisions, oldest first, from ``approval_events``."""
    rows = conn.execute(
        "SELECT action, actor, at, note FROM approval_events WHERE purpose = ? AND scope = ? AND subject = ? "
        "ORDER BY id",
        (purpose, scope, name),
    ).fetchall()
    return [{"action": r[0], "actor": r[1], "at": r[2], "note": r[3]} for r in rows]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteApprovals:
    """Approvals in one SQLite file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._opened = False

    def open(self) -> None:
        """Create the tables, and move approvals of the capture-only schema over (once)."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(_connect(self.path)) as conn:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "approvals" in tables:
                    conn.execute(
                        "INSERT OR REPLACE INTO approval_state (purpose, scope, subject, approved, actor, at, note) "
                        "SELECT ?, ?, team, approved, actor, at, note FROM approvals",
                        (CAPTURE, TEAM),
                    )
                    conn.execute("DROP TABLE approvals")
                if "approval_history" in tables:
                    conn.execute(
                        "INSERT INTO approval_events (purpose, scope, subject, action, actor, at, note) "
                        "SELECT ?, ?, team, action, actor, at, note FROM approval_history ORDER BY id",
                        (CAPTURE, TEAM),
                    )
                    conn.execute("DROP TABLE approval_history")
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        self._opened = True

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        if not self._opened:
            self.open()
        conn = _connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    def approvals(self, purpose: str) -> dict[Subject, Approval]:
        with self._conn() as conn:
            return read_approvals(conn, purpose)

    def set_approval(
        self, purpose: str, scope: str, name: str, approved: bool, actor: str, note: str | None, at: float
    ) -> Approval:
        a = Approval(purpose, scope, name, approved, actor, at, note)
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO approval_state (purpose, scope, subject, approved, actor, at, note) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (purpose, scope, name, int(approved), actor, at, note),
                )
                conn.execute(
                    "INSERT INTO approval_events (purpose, scope, subject, action, actor, at, note) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (purpose, scope, name, a.action, actor, at, note),
                )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        return a

    def approval_history(self, purpose: str, scope: str, name: str) -> list[dict[str, Any]]:
        with self._conn() as conn:
            return read_history(conn, purpose, scope, name)

    def close(self) -> None:
        return None


def open_store(sqlite_path: str, redis_url: str | None, dsn: str | None = None) -> ApprovalStore:
    """PostgreSQL when ``dsn`` is set (``database: {backend: postgres}``), else Redis when ``redis_url`` is set
    (both shared by replicas), else the SQLite file."""
    if dsn:
        from accounting.approvals.pg_store import PostgresApprovals  # only with the database configured

        return PostgresApprovals(dsn)
    if redis_url:
        # Imported only with Redis configured: the embedded default never loads the redis client.
        from accounting.approvals.redis_store import RedisApprovals

        return RedisApprovals(redis_url)
    return SqliteApprovals(sqlite_path)
