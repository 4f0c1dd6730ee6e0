"""The labelled children of the request metrics, for one combination of a request's label values: looked up once
per combination (``Accountant._series``), not per request (allowlisted label values and prometheus_client's
``labels`` cost ~4 us per request)."""

from __future__ import annotations

from typing import Any

from accounting.metrics import Metrics
from accounting.record import RequestRecord

MAX_SERIES = 4096
"""Raw label combinations whose children ``Accountant._series`` keeps before it starts over."""


class Series:
    """The labelled children of the metrics a request observes, for one combination of its label values. The
    ones not every request observes are made when first needed (a child is a series on ``/metrics``)."""

    __slots__ = ("_m", "_common", "_shadow", "_hosting", "_lazy", "requests", "duration", "overhead")

    def __init__(self, m: Metrics, rec: RequestRecord) -> None:
        lb = m.labels
        common = (
            lb.model(rec.requested_model),
            lb.model(rec.upstream_model),
            lb.backend(rec.backend),
            lb.route(rec.route),
            lb.task(rec.task),
            lb.team(rec.team),
        )
        self._m = m
        self._common = common
        self._shadow = shadow = "true" if rec.shadow else "false"
        self._hosting = "self_hosted" if rec.self_hosted else "frontier"
        self._lazy: dict[str, Any] = {}
        """Children made on first use: token types by name, and ``ttft``, ``tpot``, ``cost``."""
        self.requests = m.requests.labels(*common, rec.outcome, shadow)
        self.duration = m.operation_duration.labels(*common, rec.outcome, shadow)
        self.overhead = m.overhead.labels(common[3], common[2]) if rec.backend else None

    def token(self, token_type: str) -> Any:
        child = self._lazy.get(token_type)
        if child is None:
            child = self._lazy[token_type] = self._m.token_usage.labels(
                *self._common, token_type, self._shadow
            )
        return child

    def timing(self, name: str) -> Any:
        """``ttft`` or ``tpot``."""
        child = self._lazy.get(name)
        if child is None:
            metric = self._m.ttft if name == "ttft" else self._m.tpot
            child = self._lazy[name] = metric.labels(*self._common, self._shadow)
        return child

    def cost(self) -> Any:
        child = self._lazy.get("cost")
        if child is None:
            child = self._lazy["cost"] = self._m.cost.labels(*self._common, self._shadow, self._hosting)
        return child
