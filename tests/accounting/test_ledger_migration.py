"""A ledger written before the token-class columns existed is upgraded in place: old rows read as 0 tokens of
the new classes and tier ``standard``, and new rows land next to them (through a running gateway)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import openai
import pytest

from accounting.ledger_reports import query_spend
from gateway.cli import main
from tests.accounting.observe import ledger_rows, spend, wait_for
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

_FIRST_SCHEMA = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, request_id TEXT NOT NULL, ts REAL NOT NULL,
    key TEXT NOT NULL, team TEXT, task TEXT, route TEXT NOT NULL, requested_model TEXT NOT NULL,
    upstream_model TEXT NOT NULL, backend TEXT NOT NULL, endpoint TEXT NOT NULL, stream INTEGER NOT NULL,
    status INTEGER NOT NULL, outcome TEXT NOT NULL, error_type TEXT, input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT NOT NULL, cost_nusd INTEGER NOT NULL, latency_s REAL NOT NULL, ttft_s REAL,
    estimated INTEGER NOT NULL, priced INTEGER NOT NULL, self_hosted INTEGER NOT NULL, shadow INTEGER NOT NULL,
    fallbacks INTEGER NOT NULL
);
"""


def _first_schema_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(_FIRST_SCHEMA)
    conn.execute(
        "INSERT INTO requests VALUES (NULL, 'old-1', 'before', ?, 'app', 'search', NULL, 'default', "
        "'gpt-4o-mini', 'gpt-4o-mini', 'up', 'chat/completions', 0, 200, 'ok', NULL, 100, 10, 0, 0, "
        "'0.000021', 21000, 0.1, 0.1, 0, 1, 0, 0, 0)",
        (time.time() - 60,),
    )
    conn.commit()
    conn.close()
    return path


def test_an_old_ledger_is_migrated_and_its_rows_still_count(upstream: FakeOpenAI, tmp_path: Path) -> None:
    _first_schema_ledger(tmp_path)
    with RunningGateway(basic_config(upstream.url, server={"data_dir": str(tmp_path)})) as gw:
        with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-request-id": "after"},
            )
        wait_for(lambda: ledger_rows(tmp_path, "request_id = ?", ("after",)))
        old = ledger_rows(tmp_path, "request_id = ?", ("before",))[0]
        assert (old["cache_write_tokens"], old["audio_input_tokens"], old["service_tier"]) == (
            0,
            0,
            "standard",
        )
        total = spend(gw.url).json()["total"]
        assert total["requests"] == 2 and total["input_tokens"] == 100 + upstream.prompt_tokens


def test_an_old_ledger_read_before_any_gateway_opened_it_reports_the_new_columns_at_their_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _first_schema_ledger(tmp_path)
    (row,) = query_spend(str(path), ["model", "service_tier"], None, None)
    assert (row["requests"], row["input_tokens"], row["cache_write_tokens"]) == (1, 100, 0)
    assert row["service_tier"] == "standard"
    assert main(["spend", "-g", "model", "--ledger", str(path)]) == 0
    assert "gpt-4o-mini" in capsys.readouterr().out
    with closing(sqlite3.connect(path)) as conn:  # read, not migrated
        assert "service_tier" not in {r[1] for r in conn.execute("PRAGMA table_info(requests)")}
