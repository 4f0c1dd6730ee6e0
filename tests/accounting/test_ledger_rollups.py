"""The SQLite ledger's hourly and daily rollups: reports read them for the whole hours and days of their window
and equal a recount of the rows (every dimension, partial hours at both ends, NULL teams and tasks) whether every
row, some or none are rolled up yet; a ledger written before them is rolled up after its first start; rows copied
twice from the shared stream count once."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from accounting.ledger import SQLiteLedger, connect, row_of
from accounting.ledger_reports import query_spend
from accounting.ledger_rollups import ROLLUP_CHUNK, roll_up, spend_sql
from accounting.spend_report import DAY_S
from tests.accounting.observe import ledger_rows, spend, wait_for
from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.ledger_rows import CASES, T0, records, write_local


def roll_all(path: str, limit: int | None = None) -> None:
    """Roll up every row of the ledger at ``path`` (or its first ``limit`` rows)."""
    conn = connect(path)
    try:
        if limit is not None:
            roll_up(conn, limit)
        else:
            while roll_up(conn)[0]:
                pass
    finally:
        conn.close()


def plan_of(path: str, sql: str, args: list[Any]) -> list[str]:
    """SQLite's plan for ``sql``, a step per line."""
    conn = sqlite3.connect(path)
    try:
        return [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 3,000 rows in a ledger with rollups holding none of them yet, and in one without rollups."""
    d = tmp_path_factory.mktemp("ledgers")

    async def write() -> None:
        recs = records(3000)
        await (await write_local(d / "rolled.sqlite3", recs, rollups=True)).close()
        await (await write_local(d / "recount.sqlite3", recs, rollups=False)).close()

    asyncio.run(write())
    conn = connect(str(d / "rolled.sqlite3"))
    try:  # (its writer may have rolled some up on its own schedule: each test starts from none)
        conn.executescript(
            "BEGIN; DELETE FROM spend_hourly; DELETE FROM spend_daily; "
            "UPDATE meta SET v = '0' WHERE k = 'rolled_up'; COMMIT;"
        )
    finally:
        conn.close()
    return d / "rolled.sqlite3", d / "recount.sqlite3"


@pytest.mark.parametrize("rolled", ["all", "half", "none"])
@pytest.mark.parametrize(("group_by", "since", "until", "filters"), CASES)
def test_reports_from_rollups_equal_a_recount_of_the_rows(
    ledgers: tuple[Path, Path],
    tmp_path: Path,
    group_by: tuple[str, ...],
    since: float | None,
    until: float | None,
    filters: dict[str, str],
    rolled: str,
) -> None:
    path = str(shutil.copy(ledgers[0], tmp_path / "rolled.sqlite3"))
    if rolled != "none":
        roll_all(path, 1500 if rolled == "half" else None)
    got = query_spend(path, group_by, since, until, filters)
    assert got == query_spend(str(ledgers[1]), group_by, since, until, filters)
    assert got  # the case selects something


async def test_a_report_over_whole_days_reads_the_daily_rollup_and_only_rows_not_rolled_up_yet(
    tmp_path: Path,
) -> None:
    led = await write_local(tmp_path / "ledger.sqlite3", records(500), rollups=True)
    try:
        first = (T0 // DAY_S + 1) * DAY_S
        plan = plan_of(led.path, *spend_sql(("day",), first, first + 2 * DAY_S, {"team": "search"}))
        reads = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
        assert any("spend_daily" in step for step in reads)
        assert not any("spend_hourly" in step for step in reads)
        rows = [step for step in reads if "requests" in step]
        assert rows == ["SEARCH requests USING INTEGER PRIMARY KEY (rowid>?)"]  # by id: the newest rows only
    finally:
        await led.close()


async def test_while_most_rows_are_not_rolled_up_a_report_reads_them_by_its_window(tmp_path: Path) -> None:
    led = await write_local(tmp_path / "ledger.sqlite3", records(500), rollups=True)
    try:
        first = (T0 // DAY_S + 1) * DAY_S
        plan = plan_of(led.path, *spend_sql(("day",), first, first + DAY_S, None, unrolled=ROLLUP_CHUNK + 1))
        assert [p for p in plan if "requests" in p] == [
            "SEARCH requests USING INDEX requests_ts (ts>? AND ts<?)"
        ]
    finally:
        await led.close()


async def test_a_ledger_written_before_the_rollups_is_rolled_up_after_its_first_start(tmp_path: Path) -> None:
    recs = records(1200)
    old = await write_local(tmp_path / "ledger.sqlite3", recs, rollups=False)
    await old.close()
    recount = await write_local(tmp_path / "recount.sqlite3", recs, rollups=False)
    led = SQLiteLedger(old.path)
    led.start()
    try:
        for _ in range(500):
            if led.rollup_backlog == 0:
                break
            await asyncio.sleep(0.01)
        assert led.rollup_backlog == 0
        conn = connect(led.path)
        try:
            assert roll_up(conn) == (0, 0)  # every row is in the rollups
        finally:
            conn.close()
        assert_reports_equal(old.path, recount.path)
    finally:
        await led.close()
        await recount.close()


def assert_reports_equal(path: str, recount: str) -> None:
    """Every case's report from the ledger at ``path`` equals the one from ``recount``'s rows."""
    for group_by, since, until, filters in CASES:
        assert query_spend(path, group_by, since, until, filters) == query_spend(
            recount, group_by, since, until, filters
        )


async def written(led: SQLiteLedger, position: str) -> None:
    """Wait until ``led`` has written the foreign rows up to ``position``."""
    for _ in range(500):
        if led.stream_position() == position:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the ledger did not write up to {position}")


async def test_rows_copied_twice_from_the_shared_stream_count_once_in_the_rollups(tmp_path: Path) -> None:
    recs = records(600)
    rows = [row_of(r, f"other-{i:06d}") for i, r in enumerate(recs)]
    led = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    led.start()
    recount = SQLiteLedger(str(tmp_path / "recount.sqlite3"), rollups=False)
    recount.start()
    try:
        led.add_foreign("1-0", rows[:400])
        led.add_foreign("2-0", rows[200:])  # the stream read again from an earlier position
        recount.add_foreign("1-0", rows)
        await written(led, "2-0")
        await written(recount, "1-0")
        roll_all(led.path)
        assert_reports_equal(led.path, recount.path)
    finally:
        await led.close()
        await recount.close()


def test_a_running_gateways_spend_report_counts_every_request_before_and_after_its_rollup(
    tmp_path: Path,
) -> None:
    up = FakeOpenAI().start()
    try:
        with (
            RunningGateway(basic_config(up.url, server={"data_dir": str(tmp_path)})) as gw,
            openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as client,
        ):
            for i in range(12):
                client.chat.completions.create(
                    model="gpt-4o-mini" if i % 3 else "alias",
                    messages=[{"role": "user", "content": f"hello {i}"}],
                )
            rows = wait_for(lambda: (r := ledger_rows(tmp_path)) and len(r) == 12 and r)
            want = sorted(
                (m, sum(1 for r in rows if r["requested_model"] == m)) for m in ("gpt-4o-mini", "alias")
            )

            def by_model() -> list[tuple[str, int]]:
                doc = spend(gw.url, group_by="requested_model", **{"from": str(rows[0]["ts"] - 7200)}).json()
                return sorted((d["requested_model"], d["requests"]) for d in doc["data"])

            assert by_model() == want  # (rows not rolled up yet are read raw)
            roll_all(str(tmp_path / "ledger.sqlite3"))
            assert by_model() == want
            ledger = httpx.get(
                gw.url + "/admin/ledger", headers={"authorization": f"Bearer {ADMIN_KEY}"}
            ).json()
            assert isinstance(ledger["rollup_backlog_rows"], int)
    finally:
        up.stop()
