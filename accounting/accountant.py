"""The accountant: admission (budgets, rate limits), pricing, metrics and the ledger for every request.

The request path calls ``admit`` before dispatch (holding the request's budget reservation on its record) and
``price`` + ``finish`` after (adding its cost and releasing the reservation in one step); ``finish`` never blocks
(records are queued and written in batches in the background; token estimation for upstreams that report no
usage runs in background tasks). A request that ends without ``finish`` has its reservation released by
``release_unsettled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from accounting.catalog import Catalog, ServedModel, TokenCounter
from accounting.config import AccountingConfig
from accounting.errors import LedgerUnavailable, ModelUnpriced
from accounting.export.exporters import Exporters
from accounting.ledger import SQLiteLedger
from accounting.ledger_reports import query_spend
from accounting.limits import Limits
from accounting.metrics import ERROR_TYPES, OTHER, Labels, Metrics
from accounting.money import to_nusd
from accounting.periods import buckets_at
from accounting.price_table import PriceTable
from accounting.pricing import ModelPrice, Pricing, unpriced_message
from accounting.record import RequestRecord
from accounting.reservation import Ask, reserve_nusd
from accounting.resp import RespClient
from accounting.selfhosted import MeasuredPrices
from accounting.series import MAX_SERIES, Series
from accounting.shared_ledger import SharedLedgerLink
from accounting.shared_limits import RedisHealth
from accounting.tokens import Estimator
from wire.usage import Usage

if TYPE_CHECKING:
    from accounting.pg_ledger import PostgresLedger

log = logging.getLogger("pointsman.accounting")

_ZERO = Decimal(0)
_PICO = Decimal("1e-12")
_MAX_ESTIMATES = 10_000
_MAX_UNPRICED_NAMES = 100


def labels_for(cfg: AccountingConfig, catalog: Catalog) -> Labels:
    models: set[str] = set(cfg.model_allowlist) | set(cfg.pricing)
    for m in catalog.models.values():
        if not any(c in m.name for c in "*?["):
            models.add(m.name)
        if m.upstream_model:
            models.add(m.upstream_model)
    return Labels(
        tasks=set(cfg.task_allowlist) | set(catalog.tasks),
        teams=set(cfg.team_allowlist) if cfg.team_allowlist is not None else catalog.teams,
        models=models,
        backends=catalog.backends,
        routes=catalog.routes,
        keys=catalog.keys,
    )


class Accountant:
    def __init__(
        self,
        cfg: AccountingConfig,
        data_dir: str,
        catalog: Catalog | None = None,
        token_counter: TokenCounter | None = None,
    ) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.catalog = catalog or Catalog()
        self.metrics = Metrics(labels_for(cfg, self.catalog))
        self._by_labels: dict[tuple[Any, ...], Series] = {}
        self._in_flight: dict[str, Any] = {}
        """``pointsman_in_flight`` children by raw backend name (``track_in_flight``)."""
        self.registry = self.metrics.registry
        self.table = PriceTable.load(cfg.price_table, self.data_dir)
        self.pricing = Pricing(cfg, self.catalog, self.table)
        self.measured = MeasuredPrices(lambda: self.pricing, self.set_measured_throughput)
        """Self-hosted prices from measured fleet throughput (fed by the gateway's ``/metrics`` loop)."""
        self.limits = Limits(cfg, self.metrics)
        self.estimator = Estimator(cfg.estimation, token_counter)
        self.ledger: SQLiteLedger | None = None
        if cfg.ledger.enabled:
            self.ledger = SQLiteLedger(
                cfg.ledger.file(data_dir),
                cfg.ledger.flush_interval_s,
                cfg.ledger.batch_size,
                cfg.ledger.max_pending,
                rollups=cfg.ledger.backend
                != "postgres",  # (an outbox there: reports read PostgreSQL's rollups)
            )
        self.link: SharedLedgerLink | None = None
        self.pg: PostgresLedger | None = None
        """The PostgreSQL ledger (``accounting.ledger.backend: postgres``): reports and budget totals read it."""
        self.health: RedisHealth | None = None
        self._redis: list[RespClient] = []
        self._estimates: set[asyncio.Task[None]] = set()
        self._sem: asyncio.Semaphore | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._closing = False
        self._flagged: set[str] = set()
        """Model labels ``pointsman_model_unpriced`` is 1 for."""
        self._charged_unpriced: dict[tuple[str, str], str] = {}
        """(backend, upstream model) -> label: models without a price first met on a request (a name a glob
        let through); bounded by ``_MAX_UNPRICED_NAMES``."""
        self.exporters: Exporters | None = None
        """Request logs, traces and analytics events of every accounted request (the gateway sets it)."""
        self._publish_gauges()

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._sem = asyncio.Semaphore(64)
        self.pricing.warn_unpriced()
        if self.catalog.redis_url:
            self._connect_redis(self.catalog.redis_url)
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.start)
            if self.cfg.ledger.backend == "postgres":
                self.pg = await self._start_postgres(self.ledger)
                self.pg.on_ship.append(self._ledger_committed)
            else:
                self.ledger.on_commit.append(self._ledger_committed)
            await self._refresh_budgets()
            if self.health is not None and self.cfg.ledger.shared == "auto" and self.pg is None:
                self.link = SharedLedgerLink(
                    self.ledger, self._redis[0], self._redis[1], self.health, self.cfg.ledger.stream_maxlen
                )
                await self.link.start()
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        await self.limits.start()
        # tiktoken encodings (~110 MB) load lazily, in a thread, the first time an upstream reports no usage.

    async def _start_postgres(self, local: SQLiteLedger) -> PostgresLedger:
        """The startup check (a reachable database must have the current schema), then the shipper."""
        import psycopg  # only with the PostgreSQL ledger configured

        from accounting.pg_ledger import PostgresLedger, SchemaBehind, check_schema

        lc = self.cfg.ledger
        assert lc.dsn is not None
        try:
            st = await asyncio.to_thread(check_schema, lc.dsn)
        except psycopg.OperationalError as exc:
            log.warning("ledger: PostgreSQL unreachable at startup (%s); rows wait in the local outbox", exc)
        else:
            if not st.current:
                raise SchemaBehind(f"ledger database: {st.describe()}")
        pg = PostgresLedger(
            local,
            lc.dsn,
            interval_s=lc.flush_interval_s,
            batch_size=lc.batch_size,
            outbox_max_rows=lc.outbox_max_rows,
            retention_days=lc.retention_days,
            partitions_ahead_days=lc.partitions_ahead_days,
            metrics=self.metrics,
            call_timeout_s=lc.call_timeout_s,
        )
        await asyncio.to_thread(pg.start)
        return pg

    def _connect_redis(self, url: str) -> None:
        # A frozen Redis costs one 0.5 s timeout per connection, not one per request waiting on it; a connection
        # the server closed (a restart) is replaced before the next command, so nothing fails twice.
        client = RespClient(url, timeout_s=0.5, connect_timeout_s=0.5)
        reader = RespClient(url, timeout_s=5, connect_timeout_s=0.5)  # the shared ledger's blocking read
        self._redis = [client, reader]
        self.health = RedisHealth(client, self.metrics, self.catalog.on_unavailable)
        for component in ("limits", "ledger"):
            self.metrics.redis_up.labels(component).set(1)
        self.limits.use_redis(client, self.catalog.on_unavailable, self.health)

    async def close(self) -> None:
        """Finish background work and flush everything (the lifespan shutdown, e.g. on SIGTERM)."""
        self._closing = True
        if self._estimates:
            await asyncio.wait(list(self._estimates), timeout=15)
        await self.limits.close()
        if self.link is not None:
            await self.link.close()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.pg is not None:
            await self.pg.close()
        if self.ledger is not None:
            await self.ledger.close()
            if self.ledger.dropped:
                log.error("ledger: %d records were dropped (queue full)", self.ledger.dropped)
        closer = getattr(self.estimator.counter, "aclose", None)
        if closer is not None:
            await closer()
        if self.health is not None:
            await self.health.close()
        for c in self._redis:
            with contextlib.suppress(Exception):
                await c.aclose()
        self.metrics.close()

    def reconfigure(self, cfg: AccountingConfig, catalog: Catalog) -> None:
        """A new config was swapped in: new prices, label allowlists, budgets and limits; state is kept."""
        throughput = dict(self.pricing.throughput)
        self.cfg = cfg
        self.catalog = catalog
        self.metrics.labels = labels_for(cfg, catalog)
        self._by_labels = {}  # the allowlists changed: children are looked up again (not _in_flight's: a
        # request under way when the config changed still takes itself off the gauge it was added to)
        try:  # a new path, or a newer copy at the same path (re-read only when its mtime changed)
            self.table = PriceTable.load(cfg.price_table, self.data_dir)
        except ValueError as exc:
            log.error("%s; keeping the price table in force (%s)", exc, self.table.source)
        pricing = Pricing(cfg, catalog, self.table)
        for model, tps in throughput.items():
            pricing.set_throughput(model, tps)
        self.pricing = pricing
        self.limits.configure(cfg)
        self.measured.reapply()
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        m = self.metrics
        for name in self.pricing.unpriced:
            m.model_unpriced.labels(name).set(1)
        for name, price in self.pricing.self_hosted_prices.items():
            m.model_unpriced.labels(name).set(0)
            m.selfhosted_cost_per_mtok.labels(name).set(float(price.output_per_mtok))
        for served, label in list(self._charged_unpriced.items()):  # names first met on a request
            if self.pricing.lookup(*served) is not None:
                m.model_unpriced.labels(label).set(0)
                del self._charged_unpriced[served]
        for name in self._flagged - set(self.pricing.unpriced) - set(self._charged_unpriced.values()):
            m.model_unpriced.labels(name).set(0)  # priced since (a config swap)
        self._flagged = set(self.pricing.unpriced) | set(self._charged_unpriced.values())

    def model_price(self, backend: str, upstream_model: str, name: str | None = None) -> ModelPrice | None:
        """The price of a served model (USD per token by type; ``name``: its configured name), or None when
        unpriced. Dict lookups only."""
        return self.pricing.lookup(backend, upstream_model, name)

    def set_measured_throughput(self, model: str, tokens_per_s: float) -> None:
        """Hook for measured vLLM throughput (tokens/s, from its ``/metrics``): reprices a self-hosted model."""
        price = self.pricing.set_throughput(model, tokens_per_s)
        if price is not None:
            self._publish_gauges()

    # -- request path ------------------------------------------------------------------------------------------
    async def admit(
        self,
        rec: RequestRecord,
        doc: dict[str, Any],
        body_bytes: int,
        targets: Sequence[ServedModel],
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Admit a routed request (rate limits, budgets) or raise; a request a dollar budget covers gets its
        reservation held (``rec.reservation``): its ``body_bytes``-sized prompt and the output ``doc`` allows
        (with the route's ``defaults`` for members it does not send), at the highest price among ``targets`` (the
        models that could serve it). Dict lookups and a few
        ``Decimal`` multiplications, then the limits' one decision (one Redis script with Redis).

        With ``accounting.on_unpriced: reject``, first refuses (``ModelUnpriced``) a request that a model without
        a price could serve (its target or a fallback) when a dollar budget covers its key or team, since such a
        model would pass the budget for free: nothing is reserved or counted then."""
        if not self.limits.active:
            return
        amounts: list[int] = []
        plan = self.limits.plan(rec.key, rec.team)
        budgets = plan.budgets
        if budgets:
            lookup = self.pricing.lookup
            prices = [lookup(t.backend, t.upstream_model, t.name) for t in targets]
            if self.cfg.on_unpriced != "allow":
                for t, p in zip(targets, prices, strict=True):
                    if p is None:
                        raise ModelUnpriced(t.name, f"{budgets[0].scope} '{budgets[0].name}'")
            ask = Ask.of(
                rec.endpoint, doc, body_bytes, self.cfg.reservations.prompt_bytes_per_token, defaults
            )
            by_cap: dict[int | None, int] = {}  # a key's and its team's budgets mostly share one cap
            for x in budgets:
                cap = x.reserve_output_tokens
                a = by_cap.get(cap)
                if a is None:
                    a = by_cap[cap] = reserve_nusd(ask, prices, cap)
                amounts.append(a)
        rec.reservation = await self.limits.admit(rec.key, rec.team, amounts, plan)

    def release_unsettled(self, rec: RequestRecord) -> None:
        """A request that ended without ``finish`` (nothing to account): release what it held. A no-op for a
        request that was handed to ``finish`` (its reservation is released when its cost is added)."""
        r = rec.reservation
        if r is not None and not r.handed:
            self.limits.release(r)

    def price(self, rec: RequestRecord) -> Decimal:
        """Price ``rec.usage`` for the served model (dict lookups only); sets ``rec.cost_usd``/``rec.priced``."""
        if not rec.backend:
            rec.cost_usd = _ZERO
            return _ZERO
        if rec.priced_usage is rec.usage:
            return rec.cost_usd
        p = self.pricing.lookup(
            rec.backend, rec.upstream_model or rec.requested_model, rec.served_model or None
        )
        if p is None:
            rec.priced = False
            rec.cost_usd = _ZERO
        else:
            rec.priced = True
            rec.cost_usd = p.cost(rec.usage).quantize(_PICO)  # plain digits in headers and the ledger
            rec.context_threshold = p.rates_for(
                rec.usage.service_tier, rec.usage.input_tokens
            ).context_threshold
        rec.priced_usage = rec.usage
        return rec.cost_usd

    def finish(
        self,
        rec: RequestRecord,
        request_body: dict[str, Any] | None = None,
        output_events: Sequence[bytes] | None = None,
    ) -> None:
        """Account a finished request. Never blocks: estimation (if needed) and writes happen in the background.
        Its reservation stays held until its cost is known (after the estimation, when one is needed)."""
        if rec.reservation is not None:
            rec.reservation.handed = True
        if not rec.has_usage and rec.backend and self._upstream_worked(rec, request_body, output_events):
            if len(self._estimates) < _MAX_ESTIMATES and not self._closing:
                t = asyncio.get_running_loop().create_task(self._estimate(rec, request_body, output_events))
                self._estimates.add(t)
                t.add_done_callback(self._estimates.discard)
                return
            rec.usage = Usage(estimated=True)  # overloaded: record the request, token counts unknown
        self._record(rec)

    @staticmethod
    def _upstream_worked(
        rec: RequestRecord, body: dict[str, Any] | None, events: Sequence[bytes] | None
    ) -> bool:
        """Whether the request has tokens to estimate: output came back without usage, or the client hung up
        after its request was handed to the upstream (its prompt counts, even before the first byte came back)."""
        if rec.outcome == "cancelled" and body is not None:
            return True
        if rec.stream:
            return bool(events)
        return rec.status < 400 and rec.outcome == "ok" and bool(events)

    def refused(
        self,
        request_id: str,
        ts: float,
        key: str,
        endpoint: str,
        status: int,
        outcome: str,
        reason: str,
        latency_s: float,
    ) -> None:
        """A request refused before it was routed (bad key, malformed body, a model outside the key's scope):
        it has no ledger row (nothing was served or spent) but gets its warning line in the request log."""
        logs = self.exporters.logs if self.exporters is not None else None
        if logs is not None:
            rec = RequestRecord(request_id, ts, key, None, None, "", "", endpoint, False)
            rec.status, rec.outcome, rec.error_type, rec.latency_s = status, outcome, reason, latency_s
            logs.offer(rec)

    def track_in_flight(self, backend: str, delta: int) -> None:
        child = self._in_flight.get(backend)
        if child is None:
            m = self.metrics
            child = m.in_flight.labels(m.labels.backend(backend))
            if len(self._in_flight) < MAX_SERIES:
                self._in_flight[backend] = child
        self.metrics.tally.inc(child, delta)

    def metrics_payload(self) -> tuple[bytes, str]:
        return self.metrics.payload()

    # -- background ----------------------------------------------------------------------------------------------
    async def _estimate(
        self, rec: RequestRecord, body: dict[str, Any] | None, events: Sequence[bytes] | None
    ) -> None:
        assert self._sem is not None
        try:
            async with self._sem:
                inp, out, method = await self.estimator.estimate(
                    rec.endpoint,
                    rec.backend,
                    rec.upstream_model or rec.requested_model,
                    rec.self_hosted,
                    body,
                    events,
                )
            rec.usage = Usage(input_tokens=inp, output_tokens=out, estimated=True)
            log.debug("estimated usage of %s with %s: %d in, %d out", rec.request_id, method, inp, out)
        except Exception:
            log.exception("token estimation failed for request %s", rec.request_id)
            rec.usage = Usage(estimated=True)
        self._record(rec)

    def _record(self, rec: RequestRecord) -> None:
        cost = self.price(rec) if (rec.has_usage or rec.usage.estimated) else self.price_zero(rec)
        if not rec.priced:
            self._flag_unpriced(rec.backend, rec.upstream_model or rec.requested_model, rec.served_model)
        try:
            self._observe(rec, cost)
        except Exception:
            log.exception("metrics observation failed for request %s", rec.request_id)
        if self.ledger is not None:
            row = self.ledger.append(rec)
            if row is not None and self.link is not None:
                self.link.publish(row)
        if (self.limits.active and not rec.shadow) or rec.reservation is not None:
            # shadow spend has its own daily budget per route; the cost is added as the reservation is released
            self.limits.commit(
                rec.key, rec.team, rec.ts, to_nusd(cost), rec.usage.total_tokens, rec.reservation
            )
        if self.exporters is not None:
            self.exporters.offer(rec)

    def _flag_unpriced(self, backend: str, upstream: str, name: str = "") -> None:
        """A request was charged to a model without a price that the config does not name (a glob let it
        through): flag it in ``pointsman_model_unpriced`` and warn, once per model."""
        served = (backend, upstream)
        if (
            served in self._charged_unpriced
            or (name or self.pricing.configured_name(backend, upstream)) in self._flagged
        ):
            return
        if len(self._charged_unpriced) >= _MAX_UNPRICED_NAMES:
            label = OTHER
        else:
            label = upstream
            log.warning("%s", unpriced_message(upstream, self.pricing.self_hosted(backend)))
        self._charged_unpriced[served] = label
        self._flagged.add(label)
        self.metrics.model_unpriced.labels(label).set(1)

    @staticmethod
    def price_zero(rec: RequestRecord) -> Decimal:
        rec.cost_usd = _ZERO
        return _ZERO

    def _series(self, rec: RequestRecord) -> Series:
        """The children one request observes, looked up once per combination of its raw label values (their
        allowlisted forms and ``labels(...)`` calls cost ~4 us per request otherwise). Raw values are not bounded
        (tags come from clients), so the cache is emptied when it fills; ``reconfigure`` empties it too."""
        key = (
            rec.requested_model,
            rec.upstream_model,
            rec.backend,
            rec.route,
            rec.task,
            rec.team,
            rec.outcome,
            rec.shadow,
            rec.self_hosted,
        )
        s = self._by_labels.get(key)
        if s is None:
            if len(self._by_labels) >= MAX_SERIES:
                self._by_labels.clear()
            s = self._by_labels[key] = Series(self.metrics, rec)
        return s

    def _observe(self, rec: RequestRecord, cost: Decimal) -> None:
        m = self.metrics
        tally = m.tally
        s = self._series(rec)
        tally.inc(s.requests)
        tally.observe(s.duration, rec.latency_s)
        if s.overhead is not None:
            tally.observe(s.overhead, rec.overhead_s)
        u = rec.usage
        if rec.has_usage or u.estimated:
            tally.observe(s.token("input"), u.input_tokens)
            tally.observe(s.token("output"), u.output_tokens)
            for token_type, n in (
                ("cached_input", u.cached_input_tokens),
                ("reasoning", u.reasoning_tokens),
                ("cache_write", u.cache_write_tokens),
                ("cache_write_1h", u.cache_write_1h_tokens),
                ("audio_input", u.audio_input_tokens),
                ("audio_output", u.audio_output_tokens),
                ("image_input", u.image_input_tokens),
                ("image_output", u.image_output_tokens),
            ):
                if n:
                    tally.observe(s.token(token_type), n)
        if rec.stream and rec.ttft_s is not None:
            tally.observe(s.timing("ttft"), rec.ttft_s)
            if u.output_tokens > 1 and rec.latency_s > rec.ttft_s:
                tally.observe(s.timing("tpot"), (rec.latency_s - rec.ttft_s) / (u.output_tokens - 1))
        if cost:
            tally.inc(s.cost(), float(cost))
        for backend, et in rec.failed_attempts:
            m.upstream_error(backend, et)
            m.fallback(rec.route, backend, et)
        if rec.backend and rec.error_type in ERROR_TYPES:
            m.upstream_error(rec.backend, rec.error_type)

    # -- budgets from the ledger ---------------------------------------------------------------------------------
    def _ledger_committed(
        self, rows: list[tuple[Any, ...]], deltas: dict[tuple[str, str, str], list[int]]
    ) -> None:
        """Writer thread, after a commit of own rows (``deltas``: their spend per budget bucket, as the writer
        counted it): move their spend from pending to the snapshot."""
        source = self.pg or self.ledger
        if not self.limits.budgets or not rows or source is None:
            return
        fresh = source.budget_spend(self.limits.budget_keys())
        self.limits.ledger_committed(deltas, fresh)

    async def _refresh_budgets(self) -> None:
        source = self.pg or self.ledger
        if source is None or not self.limits.budgets:
            return
        if self.pg is not None and self.pg.last_error is not None:
            return  # the database is unreachable: keep the last totals (plus pending spend)
        gen = self.limits.generation
        try:
            fresh = await asyncio.to_thread(source.budget_spend, self.limits.budget_keys())
        except LedgerUnavailable:
            return  # the shipper reports it (last_error, /admin/ledger); keep the last totals meanwhile
        self.limits.refresh(gen, fresh)
        now = time.time()
        b = buckets_at(now)
        if self.health is None or not self.health.is_up("limits"):
            for lst in self.limits.budgets.values():
                for x in lst:
                    k = (x.scope, x.name, b[x.period])
                    spent = self.limits.snapshot.get(k, 0) + self.limits.pending.get(k, 0)
                    self.limits.signals.observe_budget(x, spent, b[x.period])

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._refresh_budgets()
            except Exception:
                log.exception("budget refresh failed")

    # -- queries ----------------------------------------------------------------------------------------------------
    async def settle(self, wait_s: float = 10.0) -> None:
        """Wait until every finished request is in the ledger (estimations done, queue written)."""
        if self._estimates:
            await asyncio.wait(list(self._estimates), timeout=wait_s)
        if self.pg is not None:
            if self.pg.last_error is None:  # while the database is unreachable, shipping cannot catch up
                await self.pg.caught_up(wait_s)
        elif self.ledger is not None:
            await self.ledger.flushed(wait_s)

    def ledger_status(self) -> dict[str, Any]:
        """What ``/admin/ledger`` shows: the backend, where rows go, and (PostgreSQL) the outbox and shipping."""
        lc = self.cfg.ledger
        if self.ledger is None:
            return {"object": "ledger", "backend": "off"}
        out: dict[str, Any] = {
            "object": "ledger",
            "backend": lc.backend,
            "path": self.ledger.path,
            "dropped_rows": self.ledger.dropped,
        }
        if self.ledger.rollups:
            out["rollup_backlog_rows"] = self.ledger.rollup_backlog
        if self.pg is not None:
            out |= self.pg.status()
        return out

    async def spend(
        self,
        group_by: Sequence[str],
        since: float | None = None,
        until: float | None = None,
        filters: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        if self.ledger is None:
            raise LookupError("the ledger is disabled (accounting.ledger.enabled: false)")
        await self.settle()
        if self.pg is not None:
            return await asyncio.to_thread(self.pg.spend, list(group_by), since, until, filters)
        return await asyncio.to_thread(query_spend, self.ledger.path, list(group_by), since, until, filters)

    @property
    def multiprocess(self) -> bool:
        return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
