"""Report windows: the times a ledger query may name (accounting.spend_report.parse_time)."""

from __future__ import annotations

import pytest

from accounting.spend_report import MAX_TS, parse_time


@pytest.mark.parametrize(
    "text", ["0", "1700000000", "2026-11-23", "2026-11-23T10:00:00Z", "9999-12-31T23:59:59Z"]
)
def test_times_between_1970_and_9999_are_accepted(text: str) -> None:
    t = parse_time(text)
    assert t is not None and 0 <= t <= MAX_TS


@pytest.mark.parametrize("text", ["1e100", "-1", "nan", "inf", "-1e300", "1969-12-31"])
def test_times_outside_1970_to_9999_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_the_end_of_an_iso_day_is_the_next_midnight() -> None:
    assert parse_time("2026-11-23", end=True) == parse_time("2026-11-24")
