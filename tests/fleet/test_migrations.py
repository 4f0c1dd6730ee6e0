"""``pointsman db migrate`` from an empty database and from the previous schema version; the startup check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from accounting import pg_schema
from accounting.ledger import COLUMNS, V1_COLUMNS
from gateway.cli.main import main
from tests.conftest import basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess

pytestmark = pytest.mark.postgres


def test_migrate_builds_the_current_schema_on_an_empty_database(
    empty_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "status", "--dsn", empty_db]) == 1
    assert main(["db", "migrate", "--dsn", empty_db]) == 0
    out = capsys.readouterr().out
    assert "applied 1: requests, partitioned by day" in out and "applied 2:" in out and "applied 3:" in out
    assert "schema version 3 (current)" in out
    assert main(["db", "status", "--dsn", empty_db]) == 0
    with psycopg.connect(empty_db) as conn:
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests' ORDER BY ordinal_position"
            )
        ]
        assert cols == list(COLUMNS)
        assert pg_schema.state(conn).current


def test_migrate_again_changes_nothing(ledger_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "migrate", "--dsn", ledger_db]) == 0
    assert capsys.readouterr().out.strip() == "schema version 3 (current)"


def _version_1_rows(conn: psycopg.Connection[Any]) -> None:
    """Six rows over two UTC days in a version-1 database (its columns only)."""
    pg_schema.ensure_partitions(
        conn, [pg_schema.day_start(1_795_000_000), pg_schema.day_start(1_795_100_000)]
    )
    base = {c: 0 for c in V1_COLUMNS} | {
        "request_id": "r",
        "route": "default",
        "requested_model": "m",
        "upstream_model": "m",
        "backend": "b",
        "endpoint": "chat/completions",
        "outcome": "ok",
        "cost_usd": "0",
        "latency_s": 0.1,
        "priced": 1,
        "status": 200,
        "error_type": None,
        "ttft_s": None,
    }
    rows = [
        base
        | {
            "uid": f"u{i}",
            "ts": 1_795_000_000 + i * 4 * 3600,  # 11:06 UTC on, past midnight
            "key": "app",
            "team": team,
            "task": None,
            "cost_nusd": 1000 * (i + 1),
            "input_tokens": i,
            "shadow": int(i == 5),
        }
        for i, team in enumerate(["search", "search", "ads", None, "ads", "search"])
    ]
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO requests ({', '.join(V1_COLUMNS)}) VALUES ({', '.join(['%s'] * len(V1_COLUMNS))})",
            [[r[c] for c in V1_COLUMNS] for r in rows],
        )


def test_migrate_from_version_1_adds_columns_and_rolls_up_existing_rows(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        pg_schema.migrate(conn, upto=1)
        assert pg_schema.state(conn).version == 1
        _version_1_rows(conn)
        done = pg_schema.migrate(conn)
        assert "2: hourly spend rollup and budget totals" in done and "column service_tier" in done
        assert pg_schema.state(conn).current
        rollup = conn.execute(
            "SELECT team, SUM(requests), SUM(cost_nusd), SUM(input_tokens) FROM spend_hourly GROUP BY team ORDER BY team"
        ).fetchall()
        raw = conn.execute(
            "SELECT team, COUNT(*), SUM(cost_nusd), SUM(input_tokens) FROM requests GROUP BY team ORDER BY team"
        ).fetchall()
        assert rollup == raw
        budget = dict(
            conn.execute(
                "SELECT name, nusd FROM budget_spend WHERE scope = 'team' AND bucket LIKE 'm:%'"
            ).fetchall()
        )
        assert budget == {
            "search": 3000,
            "ads": 8000,
        }  # the shadow row (6000, search) is not a client's spend
        assert conn.execute("SELECT DISTINCT service_tier FROM requests").fetchall() == [("standard",)]


def test_migrate_from_version_2_builds_the_daily_rollup_from_the_hourly_one(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        pg_schema.migrate(conn, upto=1)
        _version_1_rows(conn)
        pg_schema.migrate(conn, upto=2)
        assert pg_schema.state(conn).version == 2
        assert pg_schema.migrate(conn) == ["3: daily spend rollup"]
        day = pg_schema.day_of("ts")
        daily = conn.execute(
            "SELECT day, team, SUM(requests), SUM(cost_nusd), SUM(input_tokens) FROM spend_daily "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        raw = conn.execute(
            f"SELECT {day}, team, COUNT(*), SUM(cost_nusd), SUM(input_tokens) FROM requests "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        assert daily == raw and len({d for d, *_ in daily}) == 2


def test_the_gateway_refuses_to_start_against_an_unmigrated_database(
    upstream: FakeOpenAI, empty_db: str, tmp_path: Path
) -> None:
    cfg = basic_config(upstream.url, accounting={"ledger": {"backend": "postgres", "dsn": empty_db}})
    gw = GatewayProcess(cfg, tmp_path)
    try:
        with pytest.raises(RuntimeError, match="run `pointsman db migrate`"):
            gw.start()
    finally:
        gw.stop()


def test_migrate_builds_the_shared_stores_schemas_each_with_its_own_versions(
    empty_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "status", "--shared-dsn", empty_db]) == 1
    assert main(["db", "migrate", "--shared-dsn", empty_db]) == 0
    out = capsys.readouterr().out
    assert "applied policy 1: policy versions" in out and "applied shadow 1:" in out
    assert "applied policy 2: revoked client key secrets" in out
    assert "applied policy 3: owners of stored Responses API answers" in out
    assert "applied shadow 2: route volume read by route and minute" in out
    assert "policy schema version 3 (current)" in out and "shadow schema version 2 (current)" in out
    assert main(["db", "status", "--shared-dsn", empty_db]) == 0
    with psycopg.connect(empty_db) as conn:
        schemas = {r[0] for r in conn.execute("SELECT table_schema FROM information_schema.tables")}
        assert {"policy", "shadow"} <= schemas
        assert conn.execute("SELECT to_regclass('shadow.seen_route_minute')").fetchone() != (None,)
        assert conn.execute("SELECT to_regclass('public.requests')").fetchone() == (
            None,
        )  # the ledger: --dsn
