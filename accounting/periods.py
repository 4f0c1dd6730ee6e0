"""The time periods limits and budgets count in: budget buckets (``d:YYYY-MM-DD``, ``m:YYYY-MM``, UTC), when a
period resets, and the sliding one-minute window of rate limits."""

from __future__ import annotations

import time


def day_bucket(ts: float) -> str:
    """``d:YYYY-MM-DD``: the UTC day ``ts`` falls in (from ``buckets_at``'s cache)."""
    return buckets_at(ts)["daily"]


def month_bucket(ts: float) -> str:
    """``m:YYYY-MM``: the UTC month ``ts`` falls in (from ``buckets_at``'s cache)."""
    return buckets_at(ts)["monthly"]


WINDOW_S = 60.0


def buckets_at(ts: float) -> dict[str, str]:
    """The budget buckets (``d:YYYY-MM-DD``, ``m:YYYY-MM``, UTC) that time ``ts`` falls in: the caller must not
    change the mapping (the day's is shared; a request asks several times)."""
    day = int(ts // 86400)
    cached = _BUCKETS.get(day)
    if cached is None:
        g = time.gmtime(ts)
        cached = {"daily": "d:" + time.strftime("%Y-%m-%d", g), "monthly": "m:" + time.strftime("%Y-%m", g)}
        if len(_BUCKETS) > 8:
            _BUCKETS.clear()
        _BUCKETS[day] = cached
    return cached


_BUCKETS: dict[int, dict[str, str]] = {}


def seconds_to_reset(period: str, ts: float) -> int:
    g = time.gmtime(ts)
    if period == "daily":
        return max(1, 86400 - (g.tm_hour * 3600 + g.tm_min * 60 + g.tm_sec))
    y, m = (g.tm_year + 1, 1) if g.tm_mon == 12 else (g.tm_year, g.tm_mon + 1)
    nxt = time.mktime((y, m, 1, 0, 0, 0, 0, 0, 0)) - time.timezone
    return max(1, int(nxt - ts))


class Window:
    """Sliding one-minute window approximated by the current and previous fixed minutes (weighted)."""

    __slots__ = ("start", "end", "cur", "prev")

    def __init__(self) -> None:
        self.start = 0.0
        self.end = WINDOW_S
        """The current minute's end (``add`` within it needs no roll)."""
        self.cur = 0
        self.prev = 0

    def _roll(self, now: float) -> float:
        minute = now - (now % WINDOW_S)
        if minute != self.start:
            self.prev = self.cur if minute - self.start == WINDOW_S else 0
            self.cur = 0
            self.start = minute
            self.end = minute + WINDOW_S
        return (now - minute) / WINDOW_S

    def count(self, now: float) -> float:
        frac = self._roll(now)
        return self.cur + self.prev * (1 - frac)

    def add(self, now: float, n: int) -> None:
        if not self.start <= now < self.end:
            self._roll(now)
        self.cur += n


def period_of(bucket: str) -> str:
    """``daily`` or ``monthly``: the period of a budget bucket (``d:YYYY-MM-DD``, ``m:YYYY-MM``)."""
    return "daily" if bucket.startswith("d:") else "monthly"
