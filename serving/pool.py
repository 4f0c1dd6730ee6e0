"""Endpoint pools for backends with several servers (vLLM fleets).

Selection is least-outstanding-requests, weighted by the queue depth each server reports
(``vllm:num_requests_waiting``, scraped in the background by ``serving.vllm.monitor``), skipping endpoints
that are unhealthy or that the caller asks to avoid (open circuit breakers). Never does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable


class Endpoint:
    """One server of a pool and what the pool knows of its load and health."""

    __slots__ = ("url", "outstanding", "waiting", "running", "healthy")

    url: str
    outstanding: int
    waiting: float
    """Queue depth last reported by the server's /metrics."""
    running: float
    healthy: bool
    """Last /health result (True until a probe says otherwise)."""

    def __init__(
        self, url: str, outstanding: int = 0, waiting: float = 0.0, running: float = 0.0, healthy: bool = True
    ) -> None:
        self.url = url
        self.outstanding = outstanding
        self.waiting = waiting
        self.running = running
        self.healthy = healthy

    @property
    def load(self) -> float:
        return self.outstanding + self.waiting


class EndpointPool:
    def __init__(self, urls: Iterable[str]) -> None:
        self.endpoints = [Endpoint(u) for u in urls]
        self._rr = 0

    def __len__(self) -> int:
        return len(self.endpoints)

    def urls(self) -> list[str]:
        return [e.url for e in self.endpoints]

    def pick(self, avoid: frozenset[str] = frozenset()) -> Endpoint | None:
        """The least-loaded healthy endpoint not in ``avoid``; ties rotate. None when none is usable."""
        eps = self.endpoints
        if len(eps) == 1:
            e = eps[0]
            return e if e.healthy and e.url not in avoid else None
        best: Endpoint | None = None
        n = len(eps)
        start = self._rr
        self._rr = (start + 1) % n
        for i in range(n):
            e = eps[(start + i) % n]
            if not e.healthy or e.url in avoid:
                continue
            if best is None or e.load < best.load:
                best = e
        return best
