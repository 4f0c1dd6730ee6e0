"""Approvals by purpose (``accounting.approvals``): one store for capture and third-party processing consent,
embedded in SQLite or shared through a real redis-server, and the per-process book the request path reads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from accounting.approvals.book import ApprovalBook
from accounting.approvals.redis_store import RedisApprovals
from accounting.approvals.store import (
    CAPTURE,
    KEY,
    TEAM,
    THIRD_PARTY,
    Approval,
    ApprovalStore,
    SqliteApprovals,
    Subject,
)


@pytest.fixture(params=["sqlite", "redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApprovalStore]:
    if request.param == "sqlite":
        yield SqliteApprovals(str(tmp_path / "capture.sqlite3"))
        return
    if request.param == "postgres":
        from accounting.approvals.pg_store import PostgresApprovals

        pg = PostgresApprovals(request.getfixturevalue("shared_db"))
        yield pg
        pg.close()
        return
    url: str = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield RedisApprovals(url)


def test_a_decision_for_one_purpose_is_not_a_decision_for_another(store: ApprovalStore) -> None:
    store.set_approval(CAPTURE, TEAM, "growth", True, "alice", "DPA-1", 1.0)
    assert store.approvals(THIRD_PARTY) == {}
    assert store.approvals(CAPTURE)[(TEAM, "growth")].approved


def test_a_team_and_a_key_of_the_same_name_are_different_subjects(store: ApprovalStore) -> None:
    store.set_approval(THIRD_PARTY, TEAM, "growth", True, "alice", None, 1.0)
    store.set_approval(THIRD_PARTY, KEY, "growth", False, "bob", None, 2.0)
    got = store.approvals(THIRD_PARTY)
    assert got[(TEAM, "growth")].approved and not got[(KEY, "growth")].approved


def test_the_latest_decision_is_current_and_every_decision_is_in_the_history(store: ApprovalStore) -> None:
    store.set_approval(THIRD_PARTY, TEAM, "growth", True, "alice", "DPA-1", 1.0)
    store.set_approval(THIRD_PARTY, TEAM, "growth", False, "bob", "contract ended", 2.0)
    current = store.approvals(THIRD_PARTY)[(TEAM, "growth")]
    assert (current.approved, current.actor, current.at, current.note) == (
        False,
        "bob",
        2.0,
        "contract ended",
    )
    assert store.approval_history(THIRD_PARTY, TEAM, "growth") == [
        {"action": "approved", "actor": "alice", "at": 1.0, "note": "DPA-1"},
        {"action": "revoked", "actor": "bob", "at": 2.0, "note": "contract ended"},
    ]
    assert store.approval_history(CAPTURE, TEAM, "growth") == []


def test_a_capture_only_sqlite_file_keeps_its_approvals_and_history(tmp_path: Path) -> None:
    path = tmp_path / "capture.sqlite3"
    with sqlite3.connect(path) as conn:  # the schema of files written before approvals had purposes
        conn.executescript(
            "CREATE TABLE approvals (team TEXT PRIMARY KEY, approved INTEGER NOT NULL, actor TEXT NOT NULL,"
            " at REAL NOT NULL, note TEXT) WITHOUT ROWID;"
            "CREATE TABLE approval_history (id INTEGER PRIMARY KEY, team TEXT NOT NULL, action TEXT NOT NULL,"
            " actor TEXT NOT NULL, at REAL NOT NULL, note TEXT);"
            "INSERT INTO approvals VALUES ('search', 1, 'alice', 5.0, 'DPA-42');"
            "INSERT INTO approval_history (team, action, actor, at, note) VALUES"
            " ('search', 'revoked', 'bob', 4.0, NULL), ('search', 'approved', 'alice', 5.0, 'DPA-42');"
        )
    conn.close()
    store = SqliteApprovals(str(path))
    a = store.approvals(CAPTURE)[(TEAM, "search")]
    assert (a.approved, a.actor, a.at, a.note) == (True, "alice", 5.0, "DPA-42")
    assert [e["action"] for e in store.approval_history(CAPTURE, TEAM, "search")] == ["revoked", "approved"]
    assert SqliteApprovals(str(path)).approvals(CAPTURE) == store.approvals(CAPTURE)  # moved once, not twice
    assert len(store.approval_history(CAPTURE, TEAM, "search")) == 2


def test_capture_approvals_written_by_an_earlier_version_to_redis_are_read(redis_server: str) -> None:
    client = redis.Redis.from_url(redis_server)
    team = f"t-{uuid.uuid4().hex[:8]}"
    client.hset(
        "pointsman:capture:approvals",
        team,
        b'{"team": "%s", "approved": true, "actor": "carol", "at": 3.0, "note": null}' % team.encode(),
    )
    client.close()
    a = RedisApprovals(redis_server).approvals(CAPTURE)[(TEAM, team)]
    assert a.approved and a.actor == "carol"


def test_the_book_knows_nothing_and_approves_nobody_until_the_store_is_read(tmp_path: Path) -> None:
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()
    book = ApprovalBook(SqliteApprovals(str(unreadable)), 60.0)
    asyncio.run(book.refresh())
    assert not book.known
    assert book.decided(THIRD_PARTY, TEAM, "growth") is None
    assert book.last_error


def test_the_book_applies_a_decision_made_through_it_at_once(tmp_path: Path) -> None:
    async def go() -> None:
        book = ApprovalBook(SqliteApprovals(str(tmp_path / "capture.sqlite3")), 60.0)
        await book.start()
        try:
            await book.set(THIRD_PARTY, KEY, "batch", False, "dana", None)
            assert book.decided(THIRD_PARTY, KEY, "batch") is False
            await book.set(CAPTURE, TEAM, "growth", True, "dana", None)
            assert book.approved_teams(CAPTURE) == frozenset({"growth"})
            assert book.approved_teams(THIRD_PARTY) == frozenset()
        finally:
            await book.close()

    asyncio.run(go())


def test_the_book_sees_a_decision_made_elsewhere_after_a_refresh(tmp_path: Path) -> None:
    path = str(tmp_path / "capture.sqlite3")

    async def go() -> None:
        book = ApprovalBook(SqliteApprovals(path), 60.0)
        await book.start()
        try:
            SqliteApprovals(path).set_approval(THIRD_PARTY, TEAM, "growth", True, "erin", None, 9.0)
            assert book.decided(THIRD_PARTY, TEAM, "growth") is None
            await book.refresh()
            assert book.decided(THIRD_PARTY, TEAM, "growth") is True
        finally:
            await book.close()

    asyncio.run(go())


class _ReadHeldBack(SqliteApprovals):
    """An SQLite store whose reads, once ``hold`` is set, wait for ``release`` after reading (a slow replica)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.hold = threading.Event()
        self.read_done = threading.Event()
        self.release = threading.Event()

    def approvals(self, purpose: str) -> dict[Subject, Approval]:
        found = super().approvals(purpose)
        if self.hold.is_set():
            self.read_done.set()
            self.release.wait(10)
        return found


def test_a_refresh_that_read_before_a_revocation_does_not_undo_it(tmp_path: Path) -> None:
    store = _ReadHeldBack(str(tmp_path / "capture.sqlite3"))

    async def go() -> None:
        book = ApprovalBook(store, 60.0, (CAPTURE,))
        await book.start()
        try:
            await book.set(CAPTURE, TEAM, "growth", True, "alice", None)
            store.hold.set()
            refresh = asyncio.create_task(book.refresh())
            assert await asyncio.to_thread(store.read_done.wait, 10)  # it read "approved"
            await book.set(CAPTURE, TEAM, "growth", False, "bob", "contract ended")
            store.release.set()
            await refresh
            assert book.approved_teams(CAPTURE) == frozenset()
            assert book.decided(CAPTURE, TEAM, "growth") is False
        finally:
            store.release.set()
            await book.close()

    asyncio.run(go())
