"""The instruction counts' arithmetic: a callgrind dump's total, the idle window subtracted, and the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.instructions import Count, dump_total, per_request, table

_DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
events: Ir
summary: 999
fn=(1) main
16 5
totals: 1234567
"""


def test_a_dumps_total_is_its_totals_line() -> None:
    assert dump_total(_DUMP) == 1234567


def test_a_dump_without_totals_falls_back_to_its_summary() -> None:
    assert dump_total(_DUMP.replace("totals: 1234567\n", "")) == 999


def test_text_that_is_no_dump_is_refused() -> None:
    with pytest.raises(ValueError, match="not a callgrind dump"):
        dump_total("hello\n")


def test_a_requests_instructions_leave_out_the_idle_window() -> None:
    assert per_request(load=1_000_000, idle=100_000, requests=900) == 1000.0


def test_a_window_without_answered_requests_is_an_error_not_a_figure() -> None:
    with pytest.raises(ValueError, match="no request"):
        per_request(load=1_000_000, idle=100_000, requests=0)


def test_the_table_gives_each_rows_ratio_to_its_trees_defaults_and_new_over_old() -> None:
    old, new = Path("/old"), Path("/new")
    counts = [
        Count("defaults", str(old), "request", 100, 500_000.0, 0.01),
        Count("redis", str(old), "request", 100, 700_000.0, 0.01),
        Count("defaults", str(new), "request", 100, 500_000.0, 0.01),
        Count("redis", str(new), "request", 100, 600_000.0, 0.01),
    ]
    lines = table(counts, [old, new]).splitlines()
    redis = next(line for line in lines if line.startswith("redis"))
    assert redis.split()[:7] == ["redis", "request", "700.0", "1.400x", "600.0", "1.200x", "0.857x"]
