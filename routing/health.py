"""Backend health as routing sees it: a circuit breaker per backend endpoint, a latency EWMA per target.

The tracker outlives policy swaps (it belongs to the gateway's lifetime, like the backends). Nothing here does
I/O; every method is a few dict lookups, safe on the request path.

Breaker states: closed (calls flow) -> open (after ``consecutive_failures`` failures in a row, or an error rate
over a window; the endpoint is skipped at no cost) -> half-open (after ``open_s``, one probe request is let
through) -> closed on the probe's success, or open again (for twice as long) on its failure.

What counts: connection errors, timeouts, 5xx and broken responses are failures; any other answer (including
4xx) proves the endpoint alive; 429 and the gateway's own concurrency cap say nothing about health.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Protocol

from routing.config import BreakerConfig, RoutingSettings
from serving.backend import Backend, Backends
from serving.errors import (
    AUTH_STATUSES,
    BackendOverloaded,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTooLarge,
)

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", HALF_OPEN: "half_open", OPEN: "open"}

OK, FAIL, NEUTRAL = 0, 1, 2
_BUCKETS = 10


class RoutingObserver(Protocol):
    """Where routing reports events the metrics care about (wired by the gateway to the accountant)."""

    def fallback(self, route: str, backend: str, reason: str) -> None:
        """A hop on ``backend`` failed (or was skipped) and the request moved on; ``reason`` is an error type."""

    def circuit(self, backend: str, endpoint: str, state: int) -> None:
        """An endpoint's breaker changed state (0 closed, 1 half-open, 2 open)."""


class NullObserver:
    def fallback(self, route: str, backend: str, reason: str) -> None:
        return None

    def circuit(self, backend: str, endpoint: str, state: int) -> None:
        return None


def classify(exc: UpstreamError | None) -> int:
    """OK / FAIL / NEUTRAL for the breaker."""
    if exc is None:
        return OK
    if isinstance(exc, BackendOverloaded | UpstreamTooLarge):
        return NEUTRAL  # shedding load, or an answer too large for this gateway: the backend itself is fine
    if isinstance(exc, UpstreamHTTPError):
        if exc.status == 429 or exc.status in AUTH_STATUSES:
            return NEUTRAL
        return FAIL if exc.status >= 500 else OK
    return FAIL


class Breaker:
    __slots__ = ("state", "consecutive", "opened_at", "open_for", "probing", "_ids", "_tot", "_fail")

    def __init__(self) -> None:
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.open_for = 0.0
        self.probing = False
        self._ids = [-1] * _BUCKETS
        self._tot = [0] * _BUCKETS
        self._fail = [0] * _BUCKETS

    def add(self, now: float, width: float, failed: bool) -> None:
        bid = int(now / width)
        slot = bid % _BUCKETS
        if self._ids[slot] != bid:
            self._ids[slot] = bid
            self._tot[slot] = 0
            self._fail[slot] = 0
        self._tot[slot] += 1
        if failed:
            self._fail[slot] += 1

    def window(self, now: float, width: float) -> tuple[int, int]:
        """(calls, failures) over the window."""
        bid = int(now / width)
        tot = fail = 0
        for i in range(_BUCKETS):
            if bid - _BUCKETS < self._ids[i] <= bid:
                tot += self._tot[i]
                fail += self._fail[i]
        return tot, fail

    def clear_window(self) -> None:
        self._ids = [-1] * _BUCKETS

    def cooled(self, now: float) -> bool:
        return self.state == OPEN and now >= self.opened_at + self.open_for

    def available(self, now: float) -> bool:
        """Would a request be let through now (closed, a probe slot free, or open long enough)?"""
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN:
            return not self.probing
        return self.cooled(now)


class HopPlan:
    """How to call one backend given its breakers: endpoints to avoid, and the probe this call carries."""

    __slots__ = ("avoid", "probe")

    avoid: Final[frozenset[str]]
    probe: Final[str | None]

    def __init__(self, avoid: frozenset[str], probe: str | None) -> None:
        self.avoid = avoid
        self.probe = probe


CLEAR_PLAN = HopPlan(frozenset(), None)


class HealthTracker:
    def __init__(
        self,
        settings: RoutingSettings,
        registry: Backends,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg: BreakerConfig = settings.breaker
        self.alpha = settings.latency_alpha
        self.registry = registry
        self.clock = clock
        self.breakers: dict[tuple[str, str], Breaker] = {}
        self.tripped: dict[str, dict[str, Breaker]] = {}
        """backend -> endpoint -> breaker, for breakers that are not closed (empty for a healthy fleet)."""
        self.latency: dict[str, float] = {}
        self.observer: RoutingObserver = NullObserver()
        self._width = self.cfg.window_s / _BUCKETS

    # -- request path ----------------------------------------------------------------------------------
    def plan(self, backend: Backend) -> HopPlan | None:
        """What to avoid on ``backend`` now; None when every endpoint is open (skip the hop)."""
        tripped = self.tripped.get(backend.name)
        if not tripped:
            return CLEAR_PLAN
        now = self.clock()
        avoid: set[str] = set()
        probe: str | None = None
        for url, br in tripped.items():
            if probe is None and br.available(now):
                if br.state == OPEN:
                    self._set(backend.name, url, br, HALF_OPEN)
                br.probing = True
                probe = url
            else:
                avoid.add(url)
        if len(avoid) >= len(backend.info.endpoints):
            return None
        return HopPlan(frozenset(avoid), probe)

    def record(self, backend: str, endpoint: str, kind: int, plan: HopPlan | None = None) -> None:
        """The result of one call on ``endpoint``; releases ``plan``'s probe slot if another endpoint served."""
        if plan is not None and plan.probe is not None and plan.probe != endpoint:
            self.release(backend, plan)
        if not endpoint or kind == NEUTRAL:
            if plan is not None and plan.probe == endpoint:
                self.release(backend, plan)
            return
        key = (backend, endpoint)
        br = self.breakers.get(key)
        if br is None:
            br = self.breakers[key] = Breaker()
        now = self.clock()
        if kind == OK:
            br.consecutive = 0
            br.add(now, self._width, False)
            if br.state != CLOSED:
                br.probing = False
                br.open_for = 0.0
                br.clear_window()
                self._set(backend, endpoint, br, CLOSED)
            return
        br.consecutive += 1
        br.add(now, self._width, True)
        cfg = self.cfg
        if br.state == HALF_OPEN:
            br.probing = False
            self._open(backend, endpoint, br, now, min(cfg.max_open_s, max(br.open_for, cfg.open_s) * 2))
        elif br.state == CLOSED:
            trip = br.consecutive >= cfg.consecutive_failures
            if not trip:
                tot, fail = br.window(now, self._width)
                trip = tot >= cfg.min_requests and fail / tot >= cfg.error_rate
            if trip:
                self._open(backend, endpoint, br, now, cfg.open_s)

    def release(self, backend: str, plan: HopPlan) -> None:
        """Give back an unused probe slot (the call went elsewhere, was cancelled, or proved nothing)."""
        if plan.probe is None:
            return
        br = self.breakers.get((backend, plan.probe))
        if br is not None and br.state == HALF_OPEN:
            br.probing = False

    def observe_latency(self, model: str, seconds: float) -> None:
        prev = self.latency.get(model)
        self.latency[model] = seconds if prev is None else prev + self.alpha * (seconds - prev)

    # -- policy's view ---------------------------------------------------------------------------------
    def is_up(self, backend_name: str) -> bool:
        """Whether a request to this backend could be served now (some endpoint healthy and not open)."""
        backend = self.registry.get(backend_name)
        if backend is None:
            return False
        if not backend.reachable():
            return False
        tripped = self.tripped.get(backend_name)
        if not tripped:
            return True
        now = self.clock()
        for url in backend.info.endpoints:
            br = tripped.get(url)
            if br is None or br.available(now):
                return True
        return False

    def retry_after(self, backend_name: str) -> float:
        """Seconds until some open endpoint of the backend may be probed (0 if one may be now)."""
        tripped = self.tripped.get(backend_name)
        if not tripped:
            return 0.0
        now = self.clock()
        waits = [max(0.0, br.opened_at + br.open_for - now) for br in tripped.values() if br.state == OPEN]
        return min(waits) if waits else 0.0

    def state_of(self, backend: str, endpoint: str) -> int:
        br = self.breakers.get((backend, endpoint))
        return CLOSED if br is None else br.state

    def forget(self, backend: str) -> None:
        """Drop the state of a backend that was removed from the policy."""
        self.tripped.pop(backend, None)
        for key in [k for k in self.breakers if k[0] == backend]:
            del self.breakers[key]

    # -- transitions -----------------------------------------------------------------------------------
    def _open(self, backend: str, endpoint: str, br: Breaker, now: float, open_for: float) -> None:
        br.opened_at = now
        br.open_for = open_for
        self._set(backend, endpoint, br, OPEN)

    def _set(self, backend: str, endpoint: str, br: Breaker, state: int) -> None:
        br.state = state
        if state == CLOSED:
            tripped = self.tripped.get(backend)
            if tripped is not None:
                tripped.pop(endpoint, None)
                if not tripped:
                    del self.tripped[backend]
        else:
            self.tripped.setdefault(backend, {})[endpoint] = br
        self.observer.circuit(backend, endpoint, state)
