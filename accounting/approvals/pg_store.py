"""Approvals in PostgreSQL (``database: {backend: postgres, dsn}``), shared by every replica: the SQLite store's
two tables (``approval_state``, ``approval_events``) in the database's ``approvals`` schema, with their own
versioned migrations (``APPROVALS``, applied by ``pointsman db migrate``). A decision replaces the subject's
current one and is appended to its history in one transaction. Called through ``asyncio.to_thread``: one
connection, used by one thread at a time, reopened after it is lost; database errors propagate (the book keeps
its last read and fails closed until its first one).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from accounting.approvals.store import Approval, Subject, read_approvals, read_history
from accounting.pg_domain import Domain, DomainConnection

APPROVALS = Domain(
    "approvals",
    (
        (
            1,
            "approval state and events",
            (
                "CREATE TABLE approval_state (purpose TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL, "
                "approved INTEGER NOT NULL, actor TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, note TEXT, "
                "PRIMARY KEY (purpose, scope, subject))",
                "CREATE TABLE approval_events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "purpose TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL, action TEXT NOT NULL, "
                "actor TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, note TEXT)",
                "CREATE INDEX approval_events_subject ON approval_events (purpose, scope, subject, id)",
            ),
        ),
    ),
)


class PostgresApprovals:
    """``ApprovalStore`` over PostgreSQL (see the module docstring)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: DomainConnection | None = None
        self._lock = threading.Lock()

    def _db(self) -> DomainConnection:
        if self._conn is None or self._conn.closed:
            self._conn = DomainConnection(self.dsn, APPROVALS)
        return self._conn

    def approvals(self, purpose: str) -> dict[Subject, Approval]:
        with self._lock:
            return read_approvals(self._db(), purpose)

    def set_approval(
        self, purpose: str, scope: str, name: str, approved: bool, actor: str, note: str | None, at: float
    ) -> Approval:
        a = Approval(purpose, scope, name, approved, actor, at, note)
        with self._lock:
            conn = self._db().raw
            with conn.transaction():
                conn.execute(
                    "INSERT INTO approval_state (purpose, scope, subject, approved, actor, at, note) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (purpose, scope, subject) DO UPDATE SET "
                    "approved = EXCLUDED.approved, actor = EXCLUDED.actor, at = EXCLUDED.at, note = EXCLUDED.note",
                    (purpose, scope, name, int(approved), actor, at, note),
                )
                conn.execute(
                    "INSERT INTO approval_events (purpose, scope, subject, action, actor, at, note) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (purpose, scope, name, a.action, actor, at, note),
                )
        return a

    def approval_history(self, purpose: str, scope: str, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return read_history(self._db(), purpose, scope, name)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
