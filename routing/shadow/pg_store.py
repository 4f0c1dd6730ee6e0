"""Shadow pairs in PostgreSQL (``database: {backend: postgres, dsn}``): every replica writes its pairs, route
volume, spend and promotion state to the database's ``shadow`` schema (``routing.pg_schema.SHADOW``), so the
report and the promotion controller on any replica read the whole fleet's.

It is ``SQLitePairStore`` on a ``DomainConnection``: the same queued, batched writes off the request path (a
failed batch stays queued and is retried; pairs are written once per id: ``ON CONFLICT DO NOTHING``), the same
statements. A database unreachable at startup or lost later is (re)connected on the next use; a schema behind
this version's refuses the start (``pointsman db migrate``).
"""

from __future__ import annotations

import logging

import psycopg

from accounting.pg_domain import DomainConnection
from routing.pg_schema import SHADOW
from routing.shadow.store import SQLitePairStore
from routing.store import SQLConnection

log = logging.getLogger("pointsman.shadow")


class PostgresPairStore(SQLitePairStore):
    def __init__(self, dsn: str, flush_interval_s: float = 0.25) -> None:
        super().__init__(dsn, flush_interval_s)

    def _open(self) -> None:
        try:
            self._db = DomainConnection(self.path, SHADOW)
        except psycopg.OperationalError as exc:
            log.warning("shadow store: PostgreSQL unreachable at startup (%s); pairs wait in memory", exc)

    def _conn(self) -> SQLConnection:
        db = self._db
        if not isinstance(db, DomainConnection) or db.closed:
            self._db = db = DomainConnection(self.path, SHADOW)
        return db
