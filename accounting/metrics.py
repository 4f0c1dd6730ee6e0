"""Every Prometheus metric pointsman exports, declared once (the contract in docs/design.md).

Each ``Metrics`` owns a ``CollectorRegistry`` (no global registry: two gateways in one process stay apart).
Under ``--workers N`` ``pointsman serve`` sets ``PROMETHEUS_MULTIPROC_DIR``; prometheus_client then keeps
values in per-process files and ``payload()`` merges all workers' files (``accounting.worker_metrics``, the
rules of prometheus_client's ``MultiProcessCollector``, parsed entries kept between scrapes), so one scrape sees
the whole server. Gauges declare how workers combine (``multiprocess_mode``).

Label values are bounded: ``Labels`` keeps configured names and turns everything else into ``other``.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import mark_process_dead

from accounting.worker_metrics import WorkerFiles

COMMON = ("requested_model", "upstream_model", "backend", "route", "task", "team")
OUTCOMES = (
    "ok",
    "client_error",
    "upstream_error",
    "upstream_rate_limited",
    "truncated",
    "timeout",
    "rate_limited",
    "budget_exceeded",
    "cancelled",
)
"""``rate_limited``/``budget_exceeded``: the gateway's own refusals; ``upstream_rate_limited``: an upstream 429;
``truncated``: a stream the upstream ended before its ``[DONE]`` (or Responses API final event)."""
ERROR_TYPES = frozenset(
    {
        "connect",
        "disconnect",
        "timeout",
        "auth",
        "http_4xx",
        "http_429",
        "http_5xx",
        "protocol",
        "too_large",
        "truncated",
    }
)

OTHER = "other"
CONSENT_OUTCOMES = frozenset({"refused", "rerouted", "shadow_dropped"})
"""Outcomes of ``pointsman_third_party_consent_total``."""
NONE = "none"
MAX_LABEL_LEN = 128

# Buckets: durations 0.01 .. 81.92 s (x2); TTFT 0.001 .. 81.92 s (x2); overhead 0.1 ms .. 0.1 s.
DURATION_BUCKETS = tuple(round(0.01 * 2**i, 5) for i in range(14))
TTFT_BUCKETS = tuple(round(0.001 * 2**i, 6) for i in range(17)) + (81.92,)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
SCORE_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Labels:
    """Allowlists that keep label values bounded; anything else collapses to ``other``."""

    def __init__(
        self,
        tasks: Iterable[str] = (),
        teams: Iterable[str] = (),
        models: Iterable[str] = (),
        backends: Iterable[str] = (),
        routes: Iterable[str] = (),
        keys: Iterable[str] = (),
    ) -> None:
        self.tasks = frozenset(tasks)
        self.teams = frozenset(teams)
        self.models = frozenset(models)
        self.backends = frozenset(backends)
        self.routes = frozenset(routes)
        self.keys = frozenset(keys)

    @staticmethod
    def _pick(v: str | None, allowed: frozenset[str]) -> str:
        if not v:
            return NONE
        return v if v in allowed else OTHER

    def task(self, v: str | None) -> str:
        return self._pick(v, self.tasks)

    def team(self, v: str | None) -> str:
        return self._pick(v, self.teams)

    def model(self, v: str | None) -> str:
        return self._pick(v, self.models)

    def backend(self, v: str | None) -> str:
        return self._pick(v, self.backends)

    def route(self, v: str | None) -> str:
        return self._pick(v, self.routes)

    def key(self, v: str | None) -> str:
        return self._pick(v, self.keys)


class Tally:
    """What the request path observes, added up in plain Python and handed to prometheus_client at the next scrape
    (``Metrics.payload``): a counter's or gauge's change is one dict update, a histogram observation one
    ``bisect`` and two additions, where prometheus_client takes a lock and a Python loop over the buckets for each
    (~10 us of CPU per request, a twentieth of a proxied request's). Under ``--workers N`` values live in files
    that other workers' scrapes read, so there the tally writes through at once.

    Takes labelled children (``metric.labels(...)``). Histograms are read through prometheus_client's own bucket
    layout (``_upper_bounds``, ``_buckets``, ``_sum``: non-cumulative counts, an observation in the first bucket
    whose bound is >= it), as ``Histogram.observe`` writes them."""

    __slots__ = ("through", "_counts", "_hists", "_sets")

    def __init__(self, through: bool = False) -> None:
        self.through = through
        self._counts: dict[Any, float] = {}
        self._hists: dict[Any, list[Any]] = {}
        self._sets: dict[Any, float] = {}

    def set(self, child: Any, value: float) -> None:
        """A gauge's new value (the last one set before a scrape is the one shown)."""
        if self.through:
            child.set(value)
            return
        self._sets[child] = value

    def inc(self, child: Any, n: float = 1.0) -> None:
        if self.through:
            child.inc(n)
            return
        counts = self._counts
        counts[child] = counts.get(child, 0.0) + n

    def observe(self, child: Any, value: float) -> None:
        if self.through:
            child.observe(value)
            return
        h = self._hists.get(child)
        if h is None:
            bounds = child._upper_bounds
            h = self._hists[child] = [0.0, [0] * len(bounds), bounds]
        h[0] += value
        h[1][bisect_left(h[2], value)] += 1

    def flush(self) -> None:
        sets, self._sets = self._sets, {}
        for child, v in sets.items():
            child.set(v)
        counts, self._counts = self._counts, {}
        for child, n in counts.items():
            if n:
                child.inc(n)
        hists, self._hists = self._hists, {}
        for child, (total, buckets, _) in hists.items():
            child._sum.inc(total)
            for i, n in enumerate(buckets):
                if n:
                    child._buckets[i].inc(n)


class Metrics:
    """The metric objects. Use the label helpers of ``labels`` for any value that comes from a request."""

    def __init__(self, labels: Labels | None = None) -> None:
        self.labels = labels or Labels()
        self.multiprocess = multiprocess_dir() is not None
        self.tally = Tally(through=self.multiprocess)
        """Where the request path's per-request observations go (``Tally``)."""
        self.before_scrape: list[Callable[[], None]] = []
        """Run before each exposition: gauges set from state their owner keeps anyway (one process only)."""
        self._workers: WorkerFiles | None = None
        r = self.registry = CollectorRegistry(auto_describe=True)
        common = list(COMMON)
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per request by type (input includes cached input)",
            [*common, "gen_ai_token_type", "shadow"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Total time of a model request as the client saw it",
            [*common, "outcome", "shadow"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first streamed token",
            [*common, "shadow"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first (streams)",
            [*common, "shadow"],
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "pointsman_gateway_overhead_seconds",
            "Time spent in pointsman itself per request",
            ["route", "backend"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "pointsman_requests", "Model requests by outcome", [*common, "outcome", "shadow"], registry=r
        )
        self.cost = Counter(
            "pointsman_cost_usd", "Cost of model requests in USD", [*common, "shadow", "hosting"], registry=r
        )
        self.in_flight = Gauge(
            "pointsman_in_flight_requests",
            "Requests in flight per backend",
            ["backend"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.upstream_errors = Counter(
            "pointsman_upstream_errors", "Failed upstream attempts", ["backend", "error_type"], registry=r
        )
        self.fallbacks = Counter(
            "pointsman_fallbacks",
            "Attempts that failed over to the next target",
            ["route", "backend", "reason"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "pointsman_circuit_state",
            "Circuit breaker state (0 closed, 1 half-open, 2 open)",
            ["backend", "endpoint"],
            multiprocess_mode="max",
            registry=r,
        )
        self.budget_remaining = Gauge(
            "pointsman_budget_remaining_usd",
            "USD left in a budget for its current period",
            ["scope", "name", "period"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.budget_reserved = Gauge(
            "pointsman_budget_reserved_usd",
            "USD held against a budget by requests in flight (their reservations), in this gateway's workers",
            ["scope", "name", "period"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.budget_exceeded = Counter(
            "pointsman_budget_exceeded",
            "Requests refused because a budget is spent",
            ["scope", "name", "period"],
            registry=r,
        )
        self.rate_limited = Counter(
            "pointsman_rate_limited", "Requests refused by a rate limit", ["key", "limit"], registry=r
        )
        self.model_unpriced = Gauge(
            "pointsman_model_unpriced",
            "1 for a model (frontier or self-hosted) that has no price: its requests are recorded as unpriced",
            ["model"],
            multiprocess_mode="max",
            registry=r,
        )
        self.redis_up = Gauge(
            "pointsman_redis_up",
            "1 when Redis is reachable for a component",
            ["component"],
            multiprocess_mode="min",
            registry=r,
        )
        self.ledger_outbox_rows = Gauge(
            "pointsman_ledger_outbox_rows",
            "Rows in the local outbox not shipped to the PostgreSQL ledger yet",
            multiprocess_mode="max",
            registry=r,
        )
        self.ledger_outbox_max_rows = Gauge(
            "pointsman_ledger_outbox_max_rows",
            "The outbox bound (ledger.outbox_max_rows): beyond it new rows are refused until the database is back",
            multiprocess_mode="max",
            registry=r,
        )
        self.ledger_shipped_rows = Counter(
            "pointsman_ledger_shipped_rows",
            "Rows this process inserted into the PostgreSQL ledger",
            registry=r,
        )
        self.ledger_ship_failures = Counter(
            "pointsman_ledger_ship_failures",
            "Shipping passes that failed (the database unreachable or refusing); rows wait in the outbox",
            registry=r,
        )
        self.shared_state_degraded = Counter(
            "pointsman_shared_state_degraded",
            "Decisions taken without shared state (Redis unreachable)",
            ["component", "policy"],
            registry=r,
        )
        self.shadow_pairs = Counter(
            "pointsman_shadow_pairs", "Shadow pairs by outcome", ["route", "task", "outcome"], registry=r
        )
        self.shadow_dropped = Counter(
            "pointsman_shadow_dropped", "Shadow requests not sent", ["route", "reason"], registry=r
        )
        self.shadow_score = Histogram(
            "pointsman_shadow_score",
            "Comparator scores of shadow pairs",
            ["route", "comparator"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.shadow_latency_ratio = Gauge(
            "pointsman_shadow_latency_ratio",
            "Candidate p50 latency / primary p50 latency",
            ["route"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.shadow_projected_saving = Gauge(
            "pointsman_shadow_projected_monthly_saving_usd",
            "Projected monthly saving of the candidate",
            ["route"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.shadow_verdict = Gauge(
            "pointsman_shadow_verdict",
            "Current shadow verdict (1 for the current one)",
            ["route", "verdict"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.shadow_judge_consistency = Gauge(
            "pointsman_shadow_judge_consistency",
            "Share of pairs an order-swapped judge judged alike both ways",
            ["route", "comparator"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.shadow_judge_position_bias = Gauge(
            "pointsman_shadow_judge_position_bias",
            "Judge answers naming the first slot minus the second, as a share",
            ["route", "comparator"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.shadow_evidence = Gauge(
            "pointsman_shadow_evidence",
            "log(e-value) / log(1/alpha) per verdict criterion: 1 or more = shown at the anytime-valid level",
            ["route", "criterion"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.shadow_pairs_needed = Gauge(
            "pointsman_shadow_pairs_needed",
            "More pairs the verdict likely needs (0: ready)",
            ["route"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.selfhosted_cost_per_mtok = Gauge(
            "pointsman_selfhosted_cost_per_mtok_usd",
            "Price of a self-hosted model per million output tokens",
            ["model"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.feedback = Counter(
            "pointsman_feedback", "Feedback events", ["route", "task", "metric"], registry=r
        )
        # A running sum exposed under exactly this name (a Counter would append ``_total``); summed across
        # workers like a counter.
        self.feedback_value_sum = Gauge(
            "pointsman_feedback_value_sum",
            "Sum of feedback values",
            ["route", "task", "metric"],
            multiprocess_mode="sum",
            registry=r,
        )
        self.capture_traces = Counter(
            "pointsman_capture_traces",
            "Exchanges offered to data capture, by outcome (stored, queue_full, "
            "not_approved, too_large, failed)",
            ["route", "outcome"],
            registry=r,
        )
        self.third_party_consent = Counter(
            "pointsman_third_party_consent",
            "Requests of teams without third-party processing consent, by outcome: refused (403, no in-house "
            "target), rerouted (third-party targets or fallbacks removed), shadow_dropped (a shadow pair not made)",
            ["team", "outcome"],
            registry=r,
        )

        self.export_dropped = Counter(
            "pointsman_export_dropped",
            "Finished requests not exported, by exporter (logs, otlp, posthog) and reason (queue_full, "
            "export_failed)",
            ["exporter", "reason"],
            registry=r,
        )
        self.export_sent = Counter(
            "pointsman_export_sent",
            "Finished requests exported, by exporter (logs: not counted; otlp, posthog)",
            ["exporter"],
            registry=r,
        )

    # -- helpers for other packages (bounded labels) ---------------------------------------------------------
    def upstream_error(self, backend: str, error_type: str) -> None:
        et = (
            error_type
            if error_type in ERROR_TYPES
            else "protocol"
            if error_type == "upstream"
            else error_type
        )
        if et not in ERROR_TYPES:
            return
        self.upstream_errors.labels(self.labels.backend(backend), et).inc()

    def consent(self, team: str | None, outcome: str) -> None:
        """Count a request kept in-house for lack of third-party consent (outcome: ``CONSENT_OUTCOMES``)."""
        if outcome in CONSENT_OUTCOMES:
            self.third_party_consent.labels(self.labels.team(team), outcome).inc()

    def fallback(self, route: str, backend: str, reason: str) -> None:
        r = reason if reason in ERROR_TYPES or reason in ("overloaded", "circuit_open") else OTHER
        self.fallbacks.labels(self.labels.route(route), self.labels.backend(backend), r).inc()

    def set_circuit(self, backend: str, endpoint: str, state: int) -> None:
        self.circuit_state.labels(self.labels.backend(backend), endpoint[:MAX_LABEL_LEN]).set(state)

    # -- exposition ------------------------------------------------------------------------------------------
    def payload(self) -> tuple[bytes, str]:
        """The exposition: this registry, or under ``--workers N`` every worker's values merged
        (``accounting.worker_metrics``: what was parsed is kept between scrapes)."""
        for f in self.before_scrape:
            f()
        self.tally.flush()
        if self.multiprocess:
            path = multiprocess_dir()
            if path is not None:
                if self._workers is None or self._workers.path != path:
                    self._workers = WorkerFiles(path)
                return self._workers.exposition(), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Forget this worker's live gauges (in-flight) when it exits."""
        self.tally.flush()
        if self._workers is not None:
            self._workers.close()
            self._workers = None
        if self.multiprocess:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
