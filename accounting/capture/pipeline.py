"""The capture service: a bounded hand-off from the request path to a background writer.

``offer`` is what the request path calls once a response is complete. It does dict lookups, one random draw
and a ``deque.append`` — nothing else: no copying, no parsing, no redaction. When the queue is full the
exchange is dropped and counted (capture never holds a request up). A writer thread takes batches off the
queue, rebuilds each exchange into a ``Trace`` (reassembling streams), redacts it with its policy's detectors,
and writes the batch in one transaction — to the SQLite store, or with ``queue: redis`` onto a Redis stream
that sink replicas drain into their store (``accounting.capture.redis_queue``). Shutdown drains the queue.

Team approvals (purpose ``capture``) are read from an ``accounting.approvals.book.ApprovalBook``: a cache read
on the request path and re-read in the background, so approvals made through another worker or replica take
effect within its refresh interval. A team whose approval state is unknown (store unreadable) is treated as not
approved. With ``redis.url`` set, approvals live in Redis, and ``queue: redis`` shares traces through a stream
(``accounting.capture.redis_queue``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from accounting.approvals.book import ApprovalBook
from accounting.approvals.store import CAPTURE, TEAM, Approval, open_store
from accounting.capture.config import BUILTIN_DETECTORS, CapturePolicy, CaptureSettings
from accounting.capture.redact import Redactor, build_redactor, merge_counts
from accounting.capture.store import CaptureStore, trace_row
from accounting.capture.trace import (
    CAPTURED_ENDPOINTS,
    Trace,
    clean_request,
    output_from_body,
    output_from_events,
    prompt_hash,
)
from accounting.record import RETENTION_CAPPED, RequestRecord

if TYPE_CHECKING:
    from accounting.capture.redis_queue import StreamDrainer

log = logging.getLogger("pointsman.capture")

OUTCOMES = ("stored", "queue_full", "not_approved", "too_large", "failed")
DAY = 86400.0


class Offer:
    """A finished exchange queued for the writer: its record, the capture policy that sampled it, and its bodies."""

    __slots__ = ("rec", "policy", "request", "response", "events")

    rec: RequestRecord
    policy: CapturePolicy
    request: dict[str, Any]
    response: dict[str, Any] | None
    events: Sequence[bytes] | None

    def __init__(
        self,
        rec: RequestRecord,
        policy: CapturePolicy,
        request: dict[str, Any],
        response: dict[str, Any] | None,
        events: Sequence[bytes] | None,
    ) -> None:
        self.rec = rec
        self.policy = policy
        self.request = request
        self.response = response
        self.events = events


class TraceSink(Protocol):
    """Where redacted trace rows go (the SQLite store, or a shared Redis stream)."""

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None: ...


class _StoreSink:
    """The SQLite store, through one connection the writer thread keeps open."""

    def __init__(self, store: CaptureStore) -> None:
        self.store = store
        self.conn: sqlite3.Connection | None = None

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if self.conn is None:
            self.conn = self.store.connect()
        try:
            self.store.write_traces(rows, self.conn)
        except sqlite3.Error:
            self.close()  # a fresh connection for the retry
            raise

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None


class CaptureService:
    """See the module docstring. One per process; owned by the gateway's lifespan."""

    def __init__(
        self,
        settings: CaptureSettings,
        data_dir: str,
        count: Callable[[str, str], None] | None = None,
        rng: random.Random | None = None,
        redis_url: str | None = None,
        approvals: ApprovalBook | None = None,
    ) -> None:
        if settings.queue == "redis" and not redis_url:
            raise ValueError("capture.queue: redis needs redis.url (or POINTSMAN_REDIS_URL)")
        self.settings = settings
        self.store = CaptureStore(settings.store_path(data_dir))
        if redis_url:
            # Imported only with Redis configured: the embedded default never loads the redis client.
            from accounting.capture.redis_queue import RedisStreamSink, StreamDrainer
        self._owns_book = approvals is None
        self.book = approvals or ApprovalBook(
            open_store(self.store.path, redis_url), settings.approval_refresh_s, (CAPTURE,)
        )
        """Approvals (the gateway's shared book; a book of its own when none is given)."""
        self.named = settings.named_patterns()
        self._count_metric = count
        self._rng = rng or random.Random()
        self._redactors: dict[tuple[Any, ...], Redactor] = {}
        self._queue: deque[Offer] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.sink: TraceSink = _StoreSink(self.store)
        self.drainer: StreamDrainer | None = None
        if settings.queue == "redis" and redis_url:
            self.sink = RedisStreamSink(redis_url, self.store, settings.stream_maxlen)
            if settings.sink:
                self.drainer = StreamDrainer(
                    redis_url, self.store, settings.sink_group, settings.batch_size, settings.claim_idle_s
                )
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.redactions: dict[str, int] = {}
        self.last_error: str | None = None
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.store.open)
        if self._owns_book:
            await self.book.start()
        self._thread = threading.Thread(target=self._run, name="pointsman-capture", daemon=True)
        self._thread.start()
        if self.drainer is not None:
            await self.drainer.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.settings.retention_interval_s, self.purge_expired, first=True)),
        ]
        self.started = True

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 60)
            self._thread = None
        if self.drainer is not None:
            await self.drainer.close()
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()
        if self._owns_book:
            await self.book.close()
        if self.counts["queue_full"]:
            log.warning("capture: %d exchanges were dropped (queue full)", self.counts["queue_full"])

    def reconfigure(self, settings: CaptureSettings) -> None:
        """A new config: detectors and limits change; the store and queue stay."""
        self.settings = settings
        self.named = settings.named_patterns()
        self._redactors = {}

    async def _every(self, interval: float, fn: Callable[[], Any], first: bool = False) -> None:
        if not first:
            await asyncio.sleep(interval)
        while True:
            try:
                await fn()
            except Exception:  # a background loop must keep running
                log.exception("capture background task failed")
            await asyncio.sleep(interval)

    # -- request path --------------------------------------------------------------------------------------------
    def offer(
        self,
        rec: RequestRecord,
        policy: CapturePolicy,
        request: dict[str, Any],
        response: dict[str, Any] | None = None,
        events: Sequence[bytes] | None = None,
    ) -> bool:
        """Queue a finished exchange if the policy samples it and the team is approved. Never blocks."""
        if rec.outcome != "ok" or rec.status >= 400 or rec.endpoint not in CAPTURED_ENDPOINTS:
            return False
        rate = policy.sample_rate
        if rate < 1.0 and (rate <= 0.0 or self._rng.random() >= rate):
            return False
        if rec.team not in self.book.approved_teams(CAPTURE):
            self._count(rec.route, "not_approved")
            return False
        if rec.error_type == RETENTION_CAPPED:  # only the stream's beginning was kept
            self._count(rec.route, "too_large")
            return False
        if len(self._queue) >= self.settings.queue_size:
            self._count(rec.route, "queue_full")
            return False
        self._queue.append(Offer(rec, policy, request, response, events))
        if len(self._queue) >= self.settings.batch_size:
            self._wake.set()
        return True

    def _count(self, route: str, outcome: str) -> None:
        self.counts[outcome] += 1
        if self._count_metric is not None:
            self._count_metric(route, outcome)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- approvals ------------------------------------------------------------------------------------------------
    @property
    def approvals(self) -> dict[str, Approval]:
        """Each team's current capture decision."""
        return {name: a for (scope, name), a in self.book.current(CAPTURE).items() if scope == TEAM}

    @property
    def approved(self) -> frozenset[str]:
        """Teams approved for capture."""
        return self.book.approved_teams(CAPTURE)

    def is_approved(self, team: str | None) -> bool:
        return team is not None and team in self.book.approved_teams(CAPTURE)

    async def refresh_approvals(self) -> None:
        """Re-read approvals; when the store is unreachable the last known ones stay (none before the first
        successful read: capture fails closed)."""
        await self.book.refresh()

    async def set_approval(self, team: str, approved: bool, actor: str, note: str | None) -> Approval:
        return await self.book.set(CAPTURE, TEAM, team, approved, actor, note)

    async def approval_history(self, team: str) -> list[dict[str, Any]]:
        return await self.book.history(CAPTURE, TEAM, team)

    # -- retention ---------------------------------------------------------------------------------------------------
    async def purge_expired(self) -> dict[str, int]:
        deleted = await asyncio.to_thread(self.store.purge_expired)
        if deleted["traces"] or deleted["feedback"]:
            log.info(
                "capture retention: deleted %d traces and %d feedback records",
                deleted["traces"],
                deleted["feedback"],
            )
        return deleted

    # -- writer ----------------------------------------------------------------------------------------------------------
    def redactor(self, policy: CapturePolicy) -> Redactor:
        key = tuple(policy.redact)
        r = self._redactors.get(key)
        if r is None:
            r = self._redactors[key] = build_redactor(policy.redact, self.named)
        return r

    def strict_redactor(self) -> Redactor:
        """Every built-in detector plus every configured pattern (free-form text: feedback, shadow pairs)."""
        key = ("__strict__",)
        r = self._redactors.get(key)
        if r is None:
            r = self._redactors[key] = Redactor(BUILTIN_DETECTORS, self.named.values())
        return r

    def build_trace(self, o: Offer) -> Trace:
        rec = o.rec
        if o.response is not None:
            output = output_from_body(rec.endpoint, o.response)
            u = o.response.get("usage")
            usage = u if isinstance(u, dict) else None
        else:
            output, usage = output_from_events(rec.endpoint, o.events or ())
        counts: dict[str, int] = {}
        red = self.redactor(o.policy)
        request = red.redact_json(clean_request(o.request), counts)
        output = red.redact_json(output, counts)
        tags = red.redact_json(dict(rec.tags), counts)
        return Trace(
            request_id=rec.request_id,
            ts=rec.ts,
            expires_at=rec.ts + o.policy.retain_days * DAY,
            key=rec.key,
            team=rec.team,
            task=rec.task,
            route=rec.route,
            endpoint=rec.endpoint,
            requested_model=rec.requested_model,
            upstream_model=rec.upstream_model,
            backend=rec.backend,
            stream=rec.stream,
            status=rec.status,
            request=request,
            output=output,
            usage=usage,
            redactions=counts,
            prompt_hash=prompt_hash(rec.endpoint, request),
            tags=tags,
        )

    def _run(self) -> None:
        while True:
            self._wake.wait(self.settings.flush_interval_s)
            self._wake.clear()
            stop = self._stop
            while self._queue:
                self._busy = True
                try:
                    self._write_batch()
                finally:
                    self._busy = False
            if stop and not self._queue:
                return

    def _write_batch(self) -> None:
        batch: list[Offer] = []
        while self._queue and len(batch) < self.settings.batch_size:
            batch.append(self._queue.popleft())
        rows: list[tuple[Any, ...]] = []
        routes: list[str] = []
        redactions: dict[str, int] = {}
        limit = self.settings.max_trace_bytes
        for o in batch:
            try:
                t = self.build_trace(o)
                row = trace_row(t)
            except Exception:  # one malformed exchange must not stop capture
                log.exception("capture: could not build the trace of request %s", o.rec.request_id)
                self._count(o.rec.route, "failed")
                continue
            if len(row[14]) + len(row[15]) > limit:
                self._count(o.rec.route, "too_large")
                continue
            rows.append(row)
            routes.append(o.rec.route)
            merge_counts(redactions, t.redactions)
        if not rows:
            return
        for attempt in range(5):
            try:
                self.sink.write(rows)
                break
            except Exception as exc:  # disk full, locked, Redis down: retry, then count
                self.last_error = str(exc)
                if attempt == 4:
                    log.error("capture: dropping %d traces after write failures: %s", len(rows), exc)
                    for r in routes:
                        self._count(r, "failed")
                    return
                self._wake.wait(0.2 * (attempt + 1))
        self.last_error = None
        merge_counts(self.redactions, redactions)
        for r in routes:
            self._count(r, "stored")

    async def settle(self, wait_s: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, ``POST /admin/capture/flush``)."""
        deadline = time.monotonic() + wait_s
        self._wake.set()
        while self._queue or self._busy:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.01)
        if self.drainer is not None:
            return await self.drainer.settle(max(0.0, deadline - time.monotonic()))
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "pending": len(self._queue),
            "queue_size": self.settings.queue_size,
            "outcomes": dict(self.counts),
            "redactions": dict(self.redactions),
            "approved_teams": sorted(self.approved),
            "last_error": self.last_error,
            "store": self.store.path,
            "queue": self.settings.queue,
            "redis_fallback": getattr(self.sink, "fallback", 0),
            "drained": self.drainer.drained if self.drainer is not None else None,
        }
