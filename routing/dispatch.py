"""Executing a routing decision: try the chosen target, then fallbacks, within the request's deadline.

A hop is tried only while nothing has reached the client (streams are opened, headers checked, before the
gateway starts its own response). Retryable failures: connection errors, timeouts, 429, 5xx, overload, a
refused gateway credential (401/403) — ``UpstreamError.retryable``.

- A backend whose every endpoint has an open circuit breaker is skipped at once (no time spent on it); when
  every hop is skipped the request fails fast with 503 ``no_healthy_backend`` and a ``Retry-After``.
- Retries: each model of chosen-then-fallbacks is tried once, or ``1 + max_retries`` calls in all when the rule
  sets ``max_retries`` (cycling through the list). Before each retry the dispatcher waits a capped
  exponential backoff with jitter; a retry whose wait would pass the deadline is not made.
- Every call gets the time left before the request's deadline as its budget, so the whole request stays
  within its timeout.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable

from routing.config import BackoffConfig
from routing.errors import NoHealthyTarget
from routing.health import CLEAR_PLAN, NEUTRAL, OK, HealthTracker, HopPlan, classify
from routing.models import ResolvedModel
from routing.policy import Decision
from routing.upstream_call import CallSpec, build_call
from serving.backend import Backend, Backends, UpstreamResponse, UpstreamStream
from serving.errors import UpstreamConnectError, UpstreamError, UpstreamHTTPError, UpstreamTimeout
from serving.translation import translated
from wire.anthropic.untranslatable import Untranslatable
from wire.traceparent import end_span


class Attempt:
    """One hop tried: the target model, its backend, and why it failed (``None`` while it has not)."""

    __slots__ = ("model", "backend", "error")

    model: str
    backend: str
    error: str | None

    def __init__(self, model: str, backend: str, error: str | None = None) -> None:
        self.model = model
        self.backend = backend
        self.error = error


class Outcome:
    """Which target served the request, and what was tried before it."""

    __slots__ = ("target", "backend", "tried")

    target: ResolvedModel
    backend: Backend
    tried: list[Attempt]

    def __init__(self, target: ResolvedModel, backend: Backend, tried: list[Attempt] | None = None) -> None:
        self.target = target
        self.backend = backend
        self.tried = [] if tried is None else tried

    @property
    def fallbacks(self) -> int:
        return len(self.tried) - 1


def backoff_delay(cfg: BackoffConfig, retry: int, u: float) -> float:
    """Delay before retry number ``retry`` (1-based): capped exponential, jittered into [d/2, d]."""
    d: float = min(cfg.max_s, cfg.base_s * 2.0 ** (retry - 1))
    return d * (0.5 + 0.5 * u)


class Dispatcher:
    def __init__(
        self,
        registry: Backends,
        default_timeout_s: float,
        health: HealthTracker | None = None,
        backoff: BackoffConfig | None = None,
    ) -> None:
        self.registry = registry
        self.default_timeout_s = default_timeout_s
        self.health = health
        self.backoff = backoff or BackoffConfig()
        self._jitter = random.Random()

    def call(self, decision: Decision, spec: CallSpec) -> Awaitable[tuple[UpstreamResponse, Outcome]]:
        return self._run(decision, spec)  # type: ignore[return-value]  # (the coroutine itself: no extra frame)

    def open_stream(self, decision: Decision, spec: CallSpec) -> Awaitable[tuple[UpstreamStream, Outcome]]:
        return self._run(decision, spec)  # type: ignore[return-value]

    def observe_ttft(self, outcome: Outcome, seconds: float | None) -> None:
        """Streams: feed the time to first token into the target's latency EWMA."""
        if self.health is not None and seconds is not None:
            self.health.observe_latency(outcome.target.name, seconds)

    async def _run(
        self, decision: Decision, spec: CallSpec
    ) -> tuple[UpstreamResponse | UpstreamStream, Outcome]:
        stream = spec.stream
        timeout = decision.timeout_s or self.default_timeout_s
        deadline = time.monotonic() + timeout
        plan = decision.attempts
        n = len(plan)
        budget = 1 + (decision.max_retries if decision.max_retries is not None else n - 1)
        health = self.health
        tried: list[Attempt] = []
        last: UpstreamError | None = None
        skipped: list[str] = []
        pending: tuple[str, str] | None = None
        calls = 0
        step = 0
        while calls < budget and step < budget + n:
            target = plan[step % n]
            step += 1
            backend = self.registry.get(target.backend)
            if backend is None:
                tried.append(Attempt(target.name, target.backend, "connect"))
                last = UpstreamConnectError(
                    f"backend {target.backend!r} is not available", backend=target.backend
                )
                pending = (target.backend, "connect")
                calls += 1
                continue
            hop = health.plan(backend) if health is not None else CLEAR_PLAN
            if hop is None:
                tried.append(Attempt(target.name, target.backend, "circuit_open"))
                skipped.append(target.backend)
                self._fallback(decision, target.backend, "circuit_open")
                continue
            if calls:
                delay = backoff_delay(self.backoff, calls, self._jitter.random())
                if delay > 0:
                    if time.monotonic() + delay >= deadline:
                        self._release(backend, hop)
                        break
                    await asyncio.sleep(delay)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._release(backend, hop)
                break
            if pending is not None:
                self._fallback(decision, *pending)
                pending = None
            att = Attempt(target.name, target.backend)
            tried.append(att)
            calls += 1
            span = spec.trace.child("attempt", target.backend, target.upstream_model) if spec.trace else None
            try:
                call = build_call(spec, target, backend, remaining, span)
            except Untranslatable:
                self._release(backend, hop)
                if span is not None:
                    end_span(span, "untranslatable")
                raise
            t0 = time.monotonic()
            try:
                if stream:
                    res: UpstreamResponse | UpstreamStream = await backend.open_stream(call, hop.avoid)
                else:
                    res = await backend.call(call, hop.avoid)
                if call.translation is not None:
                    res = translated(res, call.translation, backend.name)
            except UpstreamError as exc:
                att.error = exc.error_type
                last = exc
                if span is not None:
                    end_span(span, exc.error_type, exc.status if isinstance(exc, UpstreamHTTPError) else 0)
                if health is not None:
                    health.record(backend.name, exc.endpoint or _only(backend), classify(exc), hop)
                if not exc.retryable:
                    raise
                pending = (backend.name, exc.error_type)
                continue
            except BaseException:
                self._release(backend, hop)
                if span is not None:
                    end_span(span, "cancelled")
                raise
            if span is not None and not stream:  # a stream's attempt span ends with the request
                end_span(span, None, res.status)  # type: ignore[union-attr]
            if health is not None:
                health.record(backend.name, res.endpoint or _only(backend), OK, hop)
                if not stream:
                    health.observe_latency(target.name, time.monotonic() - t0)
            return res, Outcome(target, backend, tried)
        if last is not None:
            raise last
        if skipped:
            wait = min(health.retry_after(b) for b in skipped) if health is not None else 1.0
            raise NoHealthyTarget(
                "Every backend for this request is unavailable (circuit open); retry shortly.",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        raise UpstreamTimeout("request deadline passed before an upstream answered")

    def _release(self, backend: Backend, hop: HopPlan) -> None:
        if self.health is not None and hop.probe is not None:
            self.health.record(backend.name, "", NEUTRAL, hop)

    def _fallback(self, decision: Decision, backend: str, reason: str) -> None:
        if self.health is not None:
            self.health.observer.fallback(decision.route, backend, reason)


def _only(backend: Backend) -> str:
    eps = backend.info.endpoints
    return eps[0] if len(eps) == 1 else ""
