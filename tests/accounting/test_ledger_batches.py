"""The SQLite ledger writes a batch in multi-row statements: every row of a batch larger than one statement holds
arrives, once, and rows copied again (same ``uid``) are ignored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from accounting.ledger import SQLiteLedger, connect, insert_rows, row_of
from accounting.record import RequestRecord


def record(i: int) -> RequestRecord:
    rec = RequestRecord(
        f"req-{i}", 1_767_225_600.0 + i, "k", "t", None, "default", "m", "chat/completions", False
    )
    rec.backend, rec.upstream_model, rec.status = "up", "m", 200
    return rec


async def test_a_batch_larger_than_one_statement_is_written_whole(tmp_path: Path) -> None:
    ledger = SQLiteLedger(str(tmp_path / "ledger.db"), batch_size=5000)
    ledger.start()
    for i in range(2500):  # ~2.8 statements' worth of rows
        ledger.append(record(i))
    await ledger.flushed()
    await ledger.close()
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        ids = [r[0] for r in conn.execute("SELECT request_id FROM requests ORDER BY id")]
        assert ids == [f"req-{i}" for i in range(2500)]
        assert conn.execute("SELECT requests FROM spend WHERE scope = 'key'").fetchone() == (2500,)


async def test_rows_inserted_again_are_ignored(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.db")
    ledger = SQLiteLedger(path)  # (creates the schema)
    ledger.start()
    await ledger.close()
    rows = [row_of(record(i), f"uid-{i}") for i in range(1000)]
    conn = connect(path)
    insert_rows(conn, rows[:600])
    insert_rows(conn, rows)  # the first 600 again, then 400 new
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT uid) FROM requests").fetchone() == (1000, 1000)
    conn.close()
