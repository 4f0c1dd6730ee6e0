"""Executing a routing decision: try the chosen target, then fallbacks, within the request's deadline.

A hop is tried only while nothing has reached the client (streams are opened, headers checked, before the
gateway starts its own response). Retryable failures: connection errors, timeouts, 429, 5xx, overload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from routing.models import ResolvedModel
from routing.policy import Decision
from serving.backend import UpstreamCall, UpstreamResponse, UpstreamStream
from serving.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from serving.registry import AnyBackend, BackendRegistry


@dataclass(slots=True)
class Attempt:
    model: str
    backend: str
    error: str | None = None


@dataclass(slots=True)
class Outcome:
    """Which target served the request, and what was tried before it."""

    target: ResolvedModel
    backend: AnyBackend
    tried: list[Attempt] = field(default_factory=list)

    @property
    def fallbacks(self) -> int:
        return len(self.tried) - 1


CallFactory = Callable[[ResolvedModel, float], UpstreamCall]


class Dispatcher:
    def __init__(self, registry: BackendRegistry, default_timeout_s: float) -> None:
        self.registry = registry
        self.default_timeout_s = default_timeout_s

    def _backend(self, target: ResolvedModel) -> AnyBackend:
        b = self.registry.get(target.backend)
        if b is None:
            raise UpstreamConnectError(f"backend {target.backend!r} is not available", backend=target.backend)
        return b

    async def call(self, decision: Decision, make: CallFactory) -> tuple[UpstreamResponse, Outcome]:
        return await self._run(decision, make, stream=False)  # type: ignore[return-value]

    async def open_stream(self, decision: Decision, make: CallFactory) -> tuple[UpstreamStream, Outcome]:
        return await self._run(decision, make, stream=True)  # type: ignore[return-value]

    async def _run(
        self, decision: Decision, make: CallFactory, stream: bool
    ) -> tuple[UpstreamResponse | UpstreamStream, Outcome]:
        timeout = decision.timeout_s or self.default_timeout_s
        deadline = time.monotonic() + timeout
        tried: list[Attempt] = []
        last: UpstreamError | None = None
        attempts = decision.attempts
        for i, target in enumerate(attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            att = Attempt(target.name, target.backend)
            tried.append(att)
            try:
                backend = self._backend(target)
                call = make(target, remaining)
                if stream:
                    res: UpstreamResponse | UpstreamStream = await backend.open_stream(call)
                else:
                    res = await backend.call(call)
                return res, Outcome(target, backend, tried)
            except UpstreamError as exc:
                att.error = exc.error_type
                last = exc
                if not exc.retryable or i == len(attempts) - 1:
                    raise
                await asyncio.sleep(0)
        if last is not None:
            raise last
        raise UpstreamTimeout("request deadline passed before an upstream answered")
