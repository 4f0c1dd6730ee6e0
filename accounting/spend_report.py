"""Spend reports over the ledger: the dimensions a report groups and filters by, the sums it gives, report
windows, and the items and CSV it answers with (the same for the SQLite and PostgreSQL ledgers)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from accounting.money import from_nusd, usd

# group_by dimension -> SQL expression
DIMENSIONS: dict[str, str] = {
    "key": "key",
    "team": "team",
    "task": "task",
    "route": "route",
    "model": "upstream_model",
    "requested_model": "requested_model",
    "backend": "backend",
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",
    "month": "strftime('%Y-%m', ts, 'unixepoch')",
    "hour": "strftime('%Y-%m-%dT%H', ts, 'unixepoch')",
    "outcome": "outcome",
    "endpoint": "endpoint",
    "shadow": "shadow",
    "estimated": "estimated",
    "priced": "priced",
    "service_tier": "service_tier",
}


FILTERS = ("key", "team", "task", "route", "model", "requested_model", "backend", "outcome")


MIN_TS = 0.0
"""The earliest time a report window may name: 1970-01-01T00:00:00Z."""


MAX_TS = 253402300799.0
"""The latest: 9999-12-31T23:59:59Z (what dates can be written in; past it, strftime and gmtime fail)."""


def parse_time(v: str | float | int | None, end: bool = False) -> float | None:
    """Unix seconds from a number, an ISO date (``2026-11-23``, whole UTC day) or ISO datetime, between
    ``MIN_TS`` and ``MAX_TS``; ValueError otherwise."""
    if v is None or v == "":
        return None
    if isinstance(v, int | float):
        return in_range(float(v))
    s = v.strip()
    try:
        return in_range(float(s))
    except ValueError:
        pass
    if len(s) == 10:
        d = datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=UTC)
        return in_range(d.timestamp() + (86400 if end else 0))
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return in_range(dt.timestamp())


def in_range(t: float) -> float:
    """``t`` if it is a time reports can name (finite, 1970 to 9999); ValueError otherwise."""
    if not (math.isfinite(t) and MIN_TS <= t <= MAX_TS):
        raise ValueError("time must be unix seconds between 1970 and 9999")
    return t


def grouped_select(table: str, dims: Sequence[str], sums: Sequence[str], where: Sequence[str]) -> str:
    """``SELECT dims AS g0.., sums FROM table WHERE .. GROUP BY g0..`` (the shape of every spend query)."""
    cols = [*(f"{d} AS g{i}" for i, d in enumerate(dims)), *sums]
    sql = f"SELECT {', '.join(cols)} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if dims:
        sql += " GROUP BY " + ", ".join(f"g{i}" for i in range(len(dims)))
    return sql


def check_query(group_by: Sequence[str], filters: dict[str, str] | None) -> None:
    """ValueError naming the choices when a group-by dimension or filter is unknown."""
    for g in group_by:
        if g not in DIMENSIONS:
            raise ValueError(f"unknown group_by {g!r}; use any of {', '.join(DIMENSIONS)}")
    for k in filters or {}:
        if k not in FILTERS:
            raise ValueError(f"unknown filter {k!r}; use any of {', '.join(FILTERS)}")


def spend_items(group_by: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Report items from result rows: the group-by values, then one sum per ``AGGREGATES`` entry."""
    out: list[dict[str, Any]] = []
    n = len(group_by)
    for r in rows:
        if r[n] == 0:
            continue
        item: dict[str, Any] = {g: r[i] for i, g in enumerate(group_by)}
        for g in ("shadow", "estimated", "priced"):
            if g in item:
                item[g] = bool(item[g])
        sums = {name: r[n + i] or 0 for i, (name, _) in enumerate(AGGREGATES)}
        nusd = sums.pop("cost_nusd")
        sums["cost_usd"] = usd(from_nusd(nusd))
        item.update((f, sums[f]) for f in SPEND_FIELDS)
        out.append(item)
    return out


AGGREGATES = (
    ("requests", "COUNT(*)"),
    ("input_tokens", "SUM(input_tokens)"),
    ("output_tokens", "SUM(output_tokens)"),
    ("cached_input_tokens", "SUM(cached_input_tokens)"),
    ("reasoning_tokens", "SUM(reasoning_tokens)"),
    ("cost_nusd", "SUM(cost_nusd)"),
    ("estimated_requests", "SUM(estimated)"),
    ("failed_requests", "SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END)"),
    ("unpriced_requests", "SUM(1 - priced)"),
    ("cache_write_tokens", "SUM(cache_write_tokens)"),
)
"""Spend report fields and their SQL (``cost_nusd`` is reported as ``cost_usd``)."""


SPEND_FIELDS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_usd",
    "estimated_requests",
    "failed_requests",
    "unpriced_requests",
    "cache_write_tokens",
)


def spend_csv(group_by: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*group_by, *SPEND_FIELDS])
    for r in rows:
        w.writerow([_csv_cell(r.get(g)) for g in group_by] + [r[f] for f in SPEND_FIELDS])
    return buf.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v  # keep spreadsheet formulas out of exported tag values
    return v
