"""Helpers for accounting tests: scrape /metrics, read the ledger, do the price arithmetic."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_KEY

MTOK = Decimal(1_000_000)


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(url + "/metrics", timeout=10).text
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.append((s.name, dict(s.labels), s.value))
    return out


def metric_sum(samples: list[tuple[str, dict[str, str], float]], metric: str, /, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == metric and all(lab.get(k) == w for k, w in labels.items()))


def ledger_rows(data_dir: Path | str, where: str = "1=1", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    path = Path(data_dir) / "ledger.sqlite3"
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM requests WHERE {where} ORDER BY id", args)]
    finally:
        con.close()


def wait_for(fn: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.time() + timeout
    last: Any = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def cost(inp: int, out: int, cached: int, p_in: str, p_out: str, p_cached: str) -> Decimal:
    """The usage x price arithmetic the tests hold the gateway to (prices per million tokens)."""
    return ((inp - cached) * Decimal(p_in) + cached * Decimal(p_cached) + out * Decimal(p_out)) / MTOK


def spend(url: str, **params: str) -> httpx.Response:
    return httpx.get(
        url + "/admin/spend", params=params, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
