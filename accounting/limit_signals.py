"""What budgets and rate limits show and say: ``pointsman_budget_remaining_usd`` and
``pointsman_budget_reserved_usd``, the soft-threshold warning, and refusals (counted, then raised)."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from accounting.budgets import Budget
from accounting.errors import BudgetExceeded, RateLimited
from accounting.metrics import Metrics
from accounting.money import from_nusd, usd
from accounting.periods import WINDOW_S, period_of, seconds_to_reset

log = logging.getLogger("pointsman.limits")

Bucket = tuple[str, str, str]
"""(scope, name, bucket) of a budget counter."""


class LimitSignals:
    """The gauges, warnings and refusals of one ``Limits``. ``reserved``: its reservations in flight per budget
    bucket (its own dict, read here)."""

    def __init__(self, metrics: Metrics, reserved: dict[Bucket, int]) -> None:
        self.metrics = metrics
        self.reserved = reserved
        self._soft_warned: set[Bucket] = set()
        self._remaining_gauges: dict[Budget, Any] = {}
        self._reserved_gauges: dict[Bucket, Any] = {}
        """``pointsman_budget_reserved_usd``'s child per budget bucket (a label lookup per request is not free)."""
        self.through = metrics.multiprocess
        """Under ``--workers N`` the reserved gauge is written per request (``holds_changed``, which callers skip
        when this is False), else set from ``reserved`` before each scrape (``_publish_reserved``)."""
        self._reserved_shown: set[Bucket] = set()
        if not self.through:
            metrics.before_scrape.append(self._publish_reserved)

    def observe_budget(self, x: Budget, spent_nusd: int, bucket: str) -> None:
        remaining = max(x.limit_nusd - spent_nusd, 0)
        gauge = self._remaining_gauges.get(x)
        if gauge is None:
            gauge = self._remaining_gauges[x] = self.metrics.budget_remaining.labels(
                x.scope, x.name, x.period
            )
        self.metrics.tally.set(
            gauge, remaining / 1e9
        )  # (nano-USD below 2**53: the same float as from_nusd's)
        if spent_nusd >= x.soft * x.limit_nusd:
            mark = (x.scope, x.name, bucket)
            if mark not in self._soft_warned:
                self._soft_warned.add(mark)
                log.warning(
                    "budget soft threshold: %s %r has spent $%s of its %s budget $%s (%.0f%%)",
                    x.scope,
                    x.name,
                    usd(from_nusd(spent_nusd)),
                    x.period,
                    usd(x.limit),
                    100 * spent_nusd / max(x.limit_nusd, 1),
                )

    def refuse_budget(
        self, x: Budget, spent_nusd: int, reserved_nusd: int, asked_nusd: int, now: float
    ) -> NoReturn:
        """Count and raise ``BudgetExceeded``: spent, or unable to cover what the request may cost on top of what
        requests in flight hold (then it says both)."""
        self.metrics.budget_exceeded.labels(x.scope, x.name, x.period).inc()
        held = (
            {}
            if spent_nusd >= x.limit_nusd
            else {"reserved": usd(from_nusd(reserved_nusd)), "asked": usd(from_nusd(asked_nusd))}
        )
        raise BudgetExceeded(
            x.scope,
            x.name,
            x.period,
            usd(x.limit),
            usd(from_nusd(spent_nusd)),
            # What requests in flight hold may come back within seconds; what was spent only at the reset.
            seconds_to_reset(x.period, now) if spent_nusd + asked_nusd > x.limit_nusd else 1,
            **held,
        )

    def refuse_rate(self, key: str, limit: str, allowed: int, now: float) -> NoReturn:
        self.metrics.rate_limited.labels(self.metrics.labels.key(key), limit).inc()
        retry = max(1, int(WINDOW_S - (now % WINDOW_S)))
        raise RateLimited(key, limit, allowed, retry)

    def holds_changed(self, holds: list[tuple[Bucket, int]], sign: int) -> None:
        """Reservations' holds were added (``sign`` 1) to or dropped (-1) from ``reserved``: under ``--workers N``
        written through to this process's gauge file at once (other workers' scrapes read it); else nothing to
        do until the scrape."""
        if not self.through:
            return
        for k, nusd in holds:
            child = self._reserved_gauges.get(k)
            if child is None:
                scope, name, bucket = k
                if len(self._reserved_gauges) >= 4096:  # buckets change daily: old ones go
                    self._reserved_gauges.clear()
                child = self._reserved_gauges[k] = self.metrics.budget_reserved.labels(
                    scope, name, period_of(bucket)
                )
            self.metrics.tally.inc(child, sign * nusd / 1e9)

    def _publish_reserved(self) -> None:
        """``pointsman_budget_reserved_usd`` in one process: set from ``reserved`` before each scrape (a budget
        whose requests all ended shows 0), not added to per request."""
        totals: dict[Bucket, int] = dict.fromkeys(self._reserved_shown, 0)
        for (scope, name, bucket), nusd in list(self.reserved.items()):
            label = (scope, name, period_of(bucket))
            totals[label] = totals.get(label, 0) + nusd
        gauge = self.metrics.budget_reserved
        for label, nusd in totals.items():
            gauge.labels(*label).set(nusd / 1e9)
        self._reserved_shown = {label for label, nusd in totals.items() if nusd}
