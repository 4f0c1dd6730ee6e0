"""The embedded capture store: one WAL-mode SQLite file (``<server.data_dir>/capture.sqlite3`` by default).

Tables: ``traces`` (one redacted exchange per request id), ``feedback`` (reward signals and demonstrations by
request id). The same file holds the approvals of every purpose (``accounting.approvals.store.SqliteApprovals``).
Everything written here has been redacted already. Writes come from the capture writer thread (batches) and
from admin/feedback handlers through ``asyncio.to_thread``; each call opens its own connection, so the store
is safe to share between threads and between the worker processes of one host.

Retention: every trace and feedback row carries ``expires_at`` (request time + the policy's ``retain_days``);
``purge_expired`` deletes what has expired.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from accounting.capture.trace import Trace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    request_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    expires_at REAL NOT NULL,
    key TEXT NOT NULL,
    team TEXT,
    task TEXT,
    route TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    backend TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    prompt_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    output TEXT NOT NULL,
    usage TEXT,
    redactions TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_ts ON traces (ts);
CREATE INDEX IF NOT EXISTS traces_expires ON traces (expires_at);
CREATE INDEX IF NOT EXISTS traces_task_ts ON traces (task, ts);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    expires_at REAL NOT NULL,
    key TEXT NOT NULL,
    team TEXT,
    task TEXT,
    route TEXT,
    metric TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL,
    demonstration TEXT,
    comment TEXT,
    redactions TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts);
CREATE INDEX IF NOT EXISTS feedback_expires ON feedback (expires_at);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""
_TRACE_COLS = (
    "request_id",
    "ts",
    "expires_at",
    "key",
    "team",
    "task",
    "route",
    "endpoint",
    "requested_model",
    "upstream_model",
    "backend",
    "stream",
    "status",
    "prompt_hash",
    "request",
    "output",
    "usage",
    "redactions",
    "tags",
)
_INSERT_TRACE = (
    f"INSERT OR IGNORE INTO traces ({', '.join(_TRACE_COLS)}) VALUES ({', '.join('?' * len(_TRACE_COLS))})"
)
_FEEDBACK_COLS = (
    "id",
    "request_id",
    "ts",
    "expires_at",
    "key",
    "team",
    "task",
    "route",
    "metric",
    "kind",
    "value",
    "demonstration",
    "comment",
    "redactions",
)
PURGE_CHUNK = 5000
"""Rows deleted per transaction by the retention purge."""
TRACE_FILTERS = ("team", "task", "route", "key", "endpoint", "requested_model", "upstream_model", "backend")
FEEDBACK_FILTERS = ("request_id", "team", "task", "route", "key", "metric", "kind")


def trace_row(t: Trace) -> tuple[Any, ...]:
    return (
        t.request_id,
        t.ts,
        t.expires_at,
        t.key,
        t.team,
        t.task,
        t.route,
        t.endpoint,
        t.requested_model,
        t.upstream_model,
        t.backend,
        int(t.stream),
        t.status,
        t.prompt_hash,
        orjson.dumps(t.request).decode(),
        orjson.dumps(t.output).decode(),
        None if t.usage is None else orjson.dumps(t.usage).decode(),
        orjson.dumps(t.redactions).decode(),
        orjson.dumps(t.tags).decode(),
    )


def trace_from_row(r: Sequence[Any]) -> Trace:
    d = dict(zip(_TRACE_COLS, r, strict=True))
    return Trace(
        request_id=d["request_id"],
        ts=d["ts"],
        expires_at=d["expires_at"],
        key=d["key"],
        team=d["team"],
        task=d["task"],
        route=d["route"],
        endpoint=d["endpoint"],
        requested_model=d["requested_model"],
        upstream_model=d["upstream_model"],
        backend=d["backend"],
        stream=bool(d["stream"]),
        status=d["status"],
        request=orjson.loads(d["request"]),
        output=orjson.loads(d["output"]),
        usage=orjson.loads(d["usage"]) if d["usage"] else None,
        redactions=orjson.loads(d["redactions"]),
        prompt_hash=d["prompt_hash"],
        tags=orjson.loads(d["tags"]),
    )


class Feedback:
    """One feedback row as stored: who sent it, for which request, and its (redacted) value."""

    __slots__ = _FEEDBACK_COLS

    id: Final[int]
    request_id: Final[str]
    ts: Final[float]
    expires_at: Final[float]
    key: Final[str]
    team: Final[str | None]
    task: Final[str | None]
    route: Final[str | None]
    metric: Final[str]
    kind: Final[str]
    """``boolean``, ``number`` or ``demonstration``."""
    value: Final[float | None]
    demonstration: Final[list[dict[str, Any]] | None]
    comment: Final[str | None]
    redactions: Final[dict[str, int]]

    def __init__(
        self,
        id: int,
        request_id: str,
        ts: float,
        expires_at: float,
        key: str,
        team: str | None,
        task: str | None,
        route: str | None,
        metric: str,
        kind: str,
        value: float | None,
        demonstration: list[dict[str, Any]] | None,
        comment: str | None,
        redactions: dict[str, int],
    ) -> None:
        self.id = id
        self.request_id = request_id
        self.ts = ts
        self.expires_at = expires_at
        self.key = key
        self.team = team
        self.task = task
        self.route = route
        self.metric = metric
        self.kind = kind
        self.value = value
        self.demonstration = demonstration
        self.comment = comment
        self.redactions = redactions

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "request_id": self.request_id,
            "ts": self.ts,
            "expires_at": self.expires_at,
            "key": self.key,
            "team": self.team,
            "task": self.task,
            "route": self.route,
            "metric": self.metric,
            "kind": self.kind,
            "comment": self.comment,
            "redactions": self.redactions,
        }
        if self.kind == "boolean":
            out["value"] = bool(self.value)
        elif self.kind == "number":
            out["value"] = self.value
        else:
            out["value"] = self.demonstration
        return out


def _feedback_from_row(r: Sequence[Any]) -> Feedback:
    d = dict(zip(_FEEDBACK_COLS, r, strict=True))
    return Feedback(
        id=d["id"],
        request_id=d["request_id"],
        ts=d["ts"],
        expires_at=d["expires_at"],
        key=d["key"],
        team=d["team"],
        task=d["task"],
        route=d["route"],
        metric=d["metric"],
        kind=d["kind"],
        value=d["value"],
        demonstration=orjson.loads(d["demonstration"]) if d["demonstration"] else None,
        comment=d["comment"],
        redactions=orjson.loads(d["redactions"]),
    )


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _where(
    filters: dict[str, Any], allowed: Iterable[str], since: float | None, until: float | None, col: str = "ts"
) -> tuple[str, list[Any]]:
    allowed = set(allowed)
    parts: list[str] = []
    args: list[Any] = []
    for k, v in filters.items():
        if v is None:
            continue
        if k not in allowed:
            raise ValueError(f"unknown filter {k!r}; use any of {', '.join(sorted(allowed))}")
        parts.append(f"{k} = ?")
        args.append(v)
    if since is not None:
        parts.append(f"{col} >= ?")
        args.append(since)
    if until is not None:
        parts.append(f"{col} < ?")
        args.append(until)
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


class CaptureStore:
    """SQLite persistence for traces and feedback (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(connect(self.path)) as conn:
            conn.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    # -- traces ---------------------------------------------------------------------------------------------------
    def write_traces(self, rows: Sequence[tuple[Any, ...]], conn: sqlite3.Connection | None = None) -> int:
        """Insert rows (from ``trace_row``) in one transaction; a request id already stored is kept as it is.
        ``conn``: a connection the caller keeps (the writer thread's), else one is opened for the call."""
        if not rows:
            return 0
        if conn is None:
            with self._conn() as own:
                return self._insert(own, rows)
        return self._insert(conn, rows)

    @staticmethod
    def _insert(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.executemany(_INSERT_TRACE, rows)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return cur.rowcount

    def connect(self) -> sqlite3.Connection:
        """A connection for a long-lived writer (closed by its owner)."""
        return connect(self.path)

    def get_trace(self, request_id: str) -> Trace | None:
        with self._conn() as conn:
            r = conn.execute(
                f"SELECT {', '.join(_TRACE_COLS)} FROM traces WHERE request_id = ?", (request_id,)
            ).fetchone()
        return trace_from_row(r) if r else None

    def traces(
        self,
        filters: dict[str, Any] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Trace]:
        where, args = _where(filters or {}, TRACE_FILTERS, since, until)
        sql = f"SELECT {', '.join(_TRACE_COLS)} FROM traces{where} ORDER BY ts {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._conn() as conn:
            return [trace_from_row(r) for r in conn.execute(sql, args)]

    def iter_traces(
        self,
        filters: dict[str, Any] | None = None,
        since: float | None = None,
        until: float | None = None,
        page: int = 1000,
    ) -> Iterator[Trace]:
        """All matching traces in time order, read in pages (exports of any size in bounded memory)."""
        where, args = _where(filters or {}, TRACE_FILTERS, since, until)
        cols = ", ".join(_TRACE_COLS)
        last: tuple[float, str] | None = None
        with self._conn() as conn:
            while True:
                if last is None:
                    sql, a = f"SELECT {cols} FROM traces{where} ORDER BY ts, request_id LIMIT {page}", args
                else:
                    cond = "(ts > ? OR (ts = ? AND request_id > ?))"
                    sql = (
                        f"SELECT {cols} FROM traces{where}{' AND ' if where else ' WHERE '}{cond} "
                        f"ORDER BY ts, request_id LIMIT {page}"
                    )
                    a = [*args, last[0], last[0], last[1]]
                rows = conn.execute(sql, a).fetchall()
                for r in rows:
                    yield trace_from_row(r)
                if len(rows) < page:
                    return
                last = (rows[-1][1], rows[-1][0])

    def count_traces(self, filters: dict[str, Any] | None = None) -> int:
        where, args = _where(filters or {}, TRACE_FILTERS, None, None)
        with self._conn() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM traces{where}", args).fetchone()[0])

    # -- feedback ---------------------------------------------------------------------------------------------------
    def add_feedback(self, fb: Feedback) -> int:
        with self._conn() as conn:
            cur = conn.execute(
                f"INSERT INTO feedback ({', '.join(_FEEDBACK_COLS[1:])}) VALUES ({', '.join('?' * (len(_FEEDBACK_COLS) - 1))})",
                (
                    fb.request_id,
                    fb.ts,
                    fb.expires_at,
                    fb.key,
                    fb.team,
                    fb.task,
                    fb.route,
                    fb.metric,
                    fb.kind,
                    fb.value,
                    None if fb.demonstration is None else orjson.dumps(fb.demonstration).decode(),
                    fb.comment,
                    orjson.dumps(fb.redactions).decode(),
                ),
            )
            return int(cur.lastrowid or 0)

    def feedback(
        self,
        filters: dict[str, Any] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[Feedback]:
        where, args = _where(filters or {}, FEEDBACK_FILTERS, since, until)
        sql = f"SELECT {', '.join(_FEEDBACK_COLS)} FROM feedback{where} ORDER BY ts DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._conn() as conn:
            return [_feedback_from_row(r) for r in conn.execute(sql, args)]

    def feedback_for(self, request_ids: Sequence[str]) -> dict[str, list[Feedback]]:
        """Feedback by request id, oldest first, for a batch of requests."""
        out: dict[str, list[Feedback]] = {}
        if not request_ids:
            return out
        with self._conn() as conn:
            for i in range(0, len(request_ids), 500):
                chunk = list(request_ids[i : i + 500])
                sql = (
                    f"SELECT {', '.join(_FEEDBACK_COLS)} FROM feedback WHERE request_id IN "
                    f"({', '.join('?' * len(chunk))}) ORDER BY ts, id"
                )
                for r in conn.execute(sql, chunk):
                    fb = _feedback_from_row(r)
                    out.setdefault(fb.request_id, []).append(fb)
        return out

    def feedback_summary(
        self,
        group_by: Sequence[str],
        since: float | None,
        until: float | None,
        filters: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        for g in group_by:
            if g not in ("route", "task", "team", "metric", "kind", "key"):
                raise ValueError(f"unknown group_by {g!r}")
        where, args = _where(filters or {}, FEEDBACK_FILTERS, since, until)
        dims = ", ".join(group_by)
        sql = f"SELECT {dims + ', ' if dims else ''}COUNT(*), SUM(value), COUNT(value) FROM feedback{where}"
        if group_by:
            sql += f" GROUP BY {dims} ORDER BY {dims}"
        n = len(group_by)
        out: list[dict[str, Any]] = []
        with self._conn() as conn:
            for r in conn.execute(sql, args):
                if not r[n]:
                    continue
                item = {g: r[i] for i, g in enumerate(group_by)}
                item.update(count=r[n], value_sum=r[n + 1], mean=(r[n + 1] / r[n + 2]) if r[n + 2] else None)
                out.append(item)
        return out

    # -- retention and deletion ---------------------------------------------------------------------------------
    def purge_expired(self, now: float | None = None, chunk: int = PURGE_CHUNK) -> dict[str, int]:
        """Delete traces and feedback whose ``expires_at`` has passed (``chunk`` rows to a transaction)."""
        now = time.time() if now is None else now
        return {
            "traces": self._delete("traces", "expires_at <= ?", (now,), chunk),
            "feedback": self._delete("feedback", "expires_at <= ?", (now,), chunk),
        }

    def purge_team(self, team: str) -> dict[str, int]:
        """Delete everything captured for a team (consent withdrawn; one transaction: ``team`` has no index, so
        chunks would each scan the tables)."""
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            t = conn.execute("DELETE FROM traces WHERE team = ?", (team,)).rowcount
            f = conn.execute("DELETE FROM feedback WHERE team = ?", (team,)).rowcount
            conn.execute("COMMIT")
        return {"traces": t, "feedback": f}

    def _delete(self, table: str, where: str, args: tuple[Any, ...], chunk: int) -> int:
        """Delete ``table``'s rows matching ``where`` (an indexed condition), ``chunk`` rows to a transaction, so
        that a large purge (a backlog after downtime, a shortened ``retain_days``) never holds the file's write lock
        for long: the writer thread and feedback go on between chunks."""
        deleted = 0
        with self._conn() as conn:
            while True:
                conn.execute("BEGIN IMMEDIATE")
                n = conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT ?)",
                    (*args, chunk),
                ).rowcount
                conn.execute("COMMIT")
                deleted += n
                if n < chunk:
                    return deleted

    def stats(self) -> dict[str, Any]:
        with self._conn() as conn:
            traces, first, last = conn.execute("SELECT COUNT(*), MIN(ts), MAX(ts) FROM traces").fetchone()
            feedback = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
        return {"traces": traces, "feedback": feedback, "first_ts": first, "last_ts": last}
