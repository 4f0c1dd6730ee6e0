"""Spend reports over the ledger: the dimensions a report groups and filters by, the sums it gives, report
windows, and the items and CSV it answers with (the same for the SQLite and PostgreSQL ledgers)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from accounting.money import from_nusd, usd

TIME_DIMS = {
    "day": "strftime('%Y-%m-%d', {t}, 'unixepoch')",
    "month": "strftime('%Y-%m', {t}, 'unixepoch')",
    "hour": "strftime('%Y-%m-%dT%H', {t}, 'unixepoch')",
}
"""The time dimensions of SQLite reports, of a column ``{t}`` of unix seconds (``ts``, or a rollup's period)."""

# group_by dimension -> SQL expression
DIMENSIONS: dict[str, str] = {
    "key": "key",
    "team": "team",
    "task": "task",
    "route": "route",
    "model": "upstream_model",
    "requested_model": "requested_model",
    "backend": "backend",
    **{g: sql.format(t="ts") for g, sql in TIME_DIMS.items()},
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


HOUR_S = 3600
DAY_S = 86400
ROLLUP_DIMS = (
    "key",
    "team",
    "task",
    "route",
    "requested_model",
    "upstream_model",
    "backend",
    "endpoint",
    "outcome",
    "shadow",
    "estimated",
    "priced",
)
"""Ledger columns the rollups (per UTC hour and day, in both ledgers) keep apart: a report grouped or filtered by
anything else reads raw rows."""
ROLLUP_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_nusd",
    "estimated_requests",
    "failed_requests",
    "unpriced_requests",
    "cache_write_tokens",
)
"""The ``AGGREGATES`` the rollups hold (one not listed makes reports read raw rows)."""


SOURCES = {"daily": ("spend_daily", "day"), "hourly": ("spend_hourly", "hour"), "raw": ("requests", "ts")}
"""``report_spans``' sources in both ledgers: the table and its time column (the rollups' period start)."""


def rolled_up(group_by: Sequence[str], filters: dict[str, str] | None) -> bool:
    """Whether a report grouped by ``group_by`` and filtered by ``filters`` can be read from the rollups."""
    cols = {DIMENSIONS[g] for g in [*group_by, *(filters or {})] if g not in TIME_DIMS}
    return cols <= set(ROLLUP_DIMS) and {a for a, _ in AGGREGATES} <= set(ROLLUP_SUMS)


def report_spans(since: float | None, until: float | None, by_hour: bool) -> list[tuple[str, float, float]]:
    """How a report over ``[since, until)`` reads a ledger with rollups: ``(source, start, end)`` parts, ``source``
    one of ``daily`` (the whole UTC days in the window; none when ``by_hour``: the report groups by hour),
    ``hourly`` (the whole hours around them) and ``raw`` (the partial hours at the ends); unbounded ends are
    infinite. Together the parts cover the window once."""
    lo = -math.inf if since is None else since
    hi = math.inf if until is None else until
    h0 = lo if lo == -math.inf else math.ceil(lo / HOUR_S) * HOUR_S
    h1 = hi if hi == math.inf else math.floor(hi / HOUR_S) * HOUR_S
    d0 = lo if lo == -math.inf else math.ceil(lo / DAY_S) * DAY_S
    d1 = hi if hi == math.inf else math.floor(hi / DAY_S) * DAY_S
    if h0 >= h1:
        return [("raw", lo, hi)]
    if by_hour or d0 >= d1:
        parts = [("hourly", h0, h1)]
    else:
        parts = [("daily", d0, d1)]
        if h0 < d0:
            parts.append(("hourly", h0, d0))
        if d1 < h1:
            parts.append(("hourly", d1, h1))
    if lo < h0:
        parts.append(("raw", lo, h0))
    if h1 < hi:
        parts.append(("raw", h1, hi))
    return parts


class Dialect:
    """What a ledger's SQL engine writes differently in a report's query."""

    __slots__ = ("param", "integer", "time_dims", "unrolled")

    param: Final[str]
    """The placeholder of a bound parameter (``?``, ``%s``)."""
    integer: Final[str]
    """An aggregate ``{}`` as an integer (``({})::bigint`` in PostgreSQL, whose sums of integers are numeric)."""
    time_dims: Final[dict[str, str]]
    """The time dimensions (``TIME_DIMS``' names) of a column ``{t}`` of unix seconds."""
    unrolled: Final[str | None]
    """The condition selecting the rows within a time range (two parameters: from, to) that the rollups do not
    hold yet, which a report reads raw beside them; None where the rollups hold every row (PostgreSQL maintains
    them in the transaction that inserts the rows)."""

    def __init__(
        self,
        param: str,
        integer: str,
        time_dims: dict[str, str],
        unrolled: str | None = None,
    ) -> None:
        self.param = param
        self.integer = integer
        self.time_dims = time_dims
        self.unrolled = unrolled


def spend_select(
    group_by: Sequence[str],
    since: float | None,
    until: float | None,
    filters: dict[str, str] | None,
    dialect: Dialect,
) -> tuple[str, list[Any]]:
    """A report's query and its parameters: one part per ``report_spans`` source (raw rows only when the
    report's dimensions are not all in the rollups), summed per group and ordered by cost."""
    check_query(group_by, filters)
    filters = filters or {}
    names = [a for a, _ in AGGREGATES]
    raw_sums = [f"{dialect.integer.format(agg)} AS {n}" for n, agg in AGGREGATES]
    rolled = [f"{dialect.integer.format(f'SUM({n})')} AS {n}" for n in names]
    spans = (
        report_spans(since, until, "hour" in group_by)
        if rolled_up(group_by, filters)
        else [("raw", -math.inf if since is None else since, math.inf if until is None else until)]
    )
    parts: list[str] = []
    args: list[Any] = []
    for source, start, end in spans:
        table, t = SOURCES[source]
        where = [f"{DIMENSIONS[k]} = {dialect.param}" for k in filters]
        args.extend(filters.values())
        if start != -math.inf:
            where.append(f"{t} >= {dialect.param}")
            args.append(start)
        if end != math.inf:
            where.append(f"{t} < {dialect.param}")
            args.append(end)
        dims = [dialect.time_dims[g].format(t=t) if g in TIME_DIMS else DIMENSIONS[g] for g in group_by]
        parts.append(grouped_select(table, dims, raw_sums if source == "raw" else rolled, where))
    rolled_spans = [(start, end) for source, start, end in spans if source != "raw"]
    if rolled_spans and dialect.unrolled is not None:  # (the rolled spans are one range)
        start, end = min(a for a, _ in rolled_spans), max(b for _, b in rolled_spans)
        table, t = SOURCES["raw"]
        where = [f"{DIMENSIONS[k]} = {dialect.param}" for k in filters]
        args.extend([*filters.values(), start, end])
        dims = [dialect.time_dims[g].format(t=t) if g in TIME_DIMS else DIMENSIONS[g] for g in group_by]
        parts.append(grouped_select(table, dims, raw_sums, [*where, dialect.unrolled]))
    gs = [f"g{i}" for i in range(len(group_by))]
    outer = ", ".join([*gs, *(dialect.integer.format(f"COALESCE(SUM({n}), 0)") for n in names)])
    sql = f"SELECT {outer} FROM ({' UNION ALL '.join(parts)}) u"
    if gs:
        sql += f" GROUP BY {', '.join(gs)} ORDER BY SUM(cost_nusd) DESC, {', '.join(gs)}"
    return sql, args


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
