"""Money is written as plain decimal digits everywhere it is shown — response headers, the ledger, /admin/spend
(JSON and CSV) and ``pointsman spend`` (table, JSON, CSV) — also for amounts of zero and below a millionth of a
dollar, which ``str(Decimal)`` writes with an exponent (``0E-9``, ``2.0E-8``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.accounting.observe import ledger_rows, spend
from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

EXPONENT = re.compile(r"\d[eE][+-]?\d")
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[RunningGateway]:
    up = FakeOpenAI(name="tiny", prompt_tokens=1, completion_tokens=0).start()
    cfg = basic_config(
        up.url,
        server={"data_dir": str(tmp_path)},
        accounting={
            "pricing": {
                "tiny-model": {"input_per_mtok": "0.02", "output_per_mtok": "0.02"},  # $0.00000002 a request
                "zero-model": {"input_per_mtok": "0", "output_per_mtok": "0"},
            }
        },
    )
    cfg["models"].update({"tiny-model": {"backend": "up"}, "zero-model": {"backend": "up"}})  # type: ignore[attr-defined]
    try:
        with RunningGateway(cfg) as g:
            g.data_dir = tmp_path  # type: ignore[attr-defined]
            yield g
    finally:
        up.stop()


def ask(gw: RunningGateway, model: str) -> httpx.Response:
    r = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": model, "messages": MSG},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r


def plain(text: str) -> str:
    assert not EXPONENT.search(text), text
    return text


def test_tiny_and_zero_costs_are_plain_digits_in_headers_and_the_ledger(gw: RunningGateway) -> None:
    assert Decimal(plain(ask(gw, "tiny-model").headers["x-pointsman-cost-usd"])) == Decimal("0.00000002")
    assert Decimal(plain(ask(gw, "zero-model").headers["x-pointsman-cost-usd"])) == 0
    spend(gw.url)  # waits for the ledger
    rows = ledger_rows(gw.data_dir)  # type: ignore[attr-defined]
    assert sorted(plain(r["cost_usd"]) for r in rows) == ["0", "0.00000002"]


def test_tiny_and_zero_costs_are_plain_digits_in_admin_spend(gw: RunningGateway) -> None:
    ask(gw, "tiny-model")
    ask(gw, "zero-model")
    doc = spend(gw.url, group_by="model").json()
    assert {r["model"]: plain(r["cost_usd"]) for r in doc["data"]} == {
        "tiny-model": "0.00000002",
        "zero-model": "0",
    }
    assert plain(doc["total"]["cost_usd"]) == "0.00000002"
    plain(spend(gw.url, group_by="model", format="csv").text)
    assert plain(spend(gw.url, group_by="model", model="zero-model").json()["total"]["cost_usd"]) == "0"


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_tiny_and_zero_costs_are_plain_digits_in_pointsman_spend(gw: RunningGateway, fmt: str) -> None:
    ask(gw, "tiny-model")
    ask(gw, "zero-model")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "spend",
            "--url",
            gw.url,
            "--group-by",
            "model",
            "--format",
            fmt,
        ],
        env={**os.environ, "POINTSMAN_ADMIN_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    plain(out)
    assert "0.00000002" in out
    if fmt == "table":
        assert out.rstrip().splitlines()[-1].endswith("$0.00000002") or "$0.00000002" in out
