"""The shared ledger stream's read position in the SQLite ledger: entries that held only this replica's own rows
move it without a transaction of their own (it is written with the writer's next batch), and it is never written
ahead of foreign rows still waiting to be inserted (a restart resumes from it: rows behind it are never read
again)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from accounting.ledger import SQLiteLedger, row_of
from tests.accounting.test_ledger_batches import record


def position_of(path: Path) -> str | None:
    return SQLiteLedger(str(path)).stream_position()


def past_own_entries(path: Path, position: str, flush_interval_s: float) -> SQLiteLedger:
    """A started ledger at ``path`` told that the stream up to ``position`` held only its own rows."""
    ledger = SQLiteLedger(str(path), flush_interval_s=flush_interval_s)
    ledger.start()
    ledger.add_foreign(position, [])
    return ledger


def request_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM requests ORDER BY id")]


async def test_a_position_past_own_entries_waits_for_the_next_batch_instead_of_waking_the_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    ledger = past_own_entries(path, "5-0", flush_interval_s=30)
    await asyncio.sleep(0.3)
    assert position_of(path) is None  # no transaction for it alone
    ledger.append(record(1))
    await ledger.flushed()  # the next batch carries it
    assert position_of(path) == "5-0"
    await ledger.close()


async def test_a_position_past_own_entries_is_written_at_the_periodic_flush(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = past_own_entries(path, "7-0", flush_interval_s=0.05)
    for _ in range(100):
        if position_of(path) == "7-0":
            break
        await asyncio.sleep(0.02)
    assert position_of(path) == "7-0"
    await ledger.close()


async def test_a_position_past_own_entries_is_written_on_close(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await past_own_entries(path, "9-0", flush_interval_s=30).close()
    assert position_of(path) == "9-0"


async def test_own_entries_behind_queued_foreign_rows_are_written_after_them(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(str(path), flush_interval_s=30)
    ledger.add_foreign("1-0", [row_of(record(1), "other-1")])  # queued before the writer runs
    ledger.add_foreign("2-0", [])
    ledger.start()
    await ledger.close()
    assert request_ids(path) == ["req-1"]
    assert position_of(path) == "2-0"


async def test_foreign_rows_after_own_entries_carry_the_later_position(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(str(path), flush_interval_s=30)
    ledger.add_foreign("1-0", [])
    ledger.add_foreign("2-0", [row_of(record(2), "other-2")])
    ledger.start()
    await ledger.close()
    assert request_ids(path) == ["req-2"]
    assert position_of(path) == "2-0"
