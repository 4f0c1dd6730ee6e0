"""What the app lifespan owns: every long-lived component, and the order they start and close in.

A plain container: ``gateway.assembly.assemble`` builds the components and fills it in; nothing here builds
anything or hands itself to a component.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from accounting.accountant import Accountant
from accounting.approvals.book import ApprovalBook
from gateway.capture import CaptureGate
from gateway.config import GatewayConfig
from gateway.inference.handler import InferenceHandler
from gateway.live_runtime import LiveRuntime
from gateway.policy_control import PolicyControl
from gateway.runtime import Runtime
from gateway.shadow_setup import Shadow
from gateway.upstream_models import UpstreamModels
from gateway.vllm_pricing import SelfHostedPricing
from routing.dispatch import Dispatcher
from routing.health import HealthTracker
from serving.registry import BackendRegistry

log = logging.getLogger("pointsman")

Step = Callable[[], Awaitable[None]]
SHOWN_TASKS = 20
"""How many of the tasks still running a shutdown step's timeout names."""


class GatewayState:
    """Every long-lived component of a gateway process, and the steps that start and close them in order."""

    __slots__ = (
        "config",
        "live",
        "registry",
        "accountant",
        "capture",
        "approvals",
        "health",
        "dispatcher",
        "control",
        "shadow",
        "vllm_pricing",
        "inference",
        "upstream_models",
        "startup",
        "shutdown",
        "started_at",
        "ready",
        "draining",
    )

    config: GatewayConfig
    """The config file's (the policy sections in force are ``runtime.config``'s)."""
    live: LiveRuntime
    registry: BackendRegistry
    accountant: Accountant
    capture: CaptureGate
    approvals: ApprovalBook
    """Approvals of every purpose (capture, third-party processing), shared across replicas with Redis."""
    health: HealthTracker
    dispatcher: Dispatcher
    control: PolicyControl
    shadow: Shadow
    vllm_pricing: SelfHostedPricing
    inference: InferenceHandler
    upstream_models: UpstreamModels
    """The backends' own model lists, for the glob entries ``/v1/models`` lists."""
    startup: list[Step]
    """Run in order by ``start``."""
    shutdown: list[Step]
    """Run in order by ``close``."""
    started_at: float
    ready: bool
    draining: bool

    def __init__(
        self,
        config: GatewayConfig,
        live: LiveRuntime,
        registry: BackendRegistry,
        accountant: Accountant,
        capture: CaptureGate,
        approvals: ApprovalBook,
        health: HealthTracker,
        dispatcher: Dispatcher,
        control: PolicyControl,
        shadow: Shadow,
        vllm_pricing: SelfHostedPricing,
        inference: InferenceHandler,
        upstream_models: UpstreamModels,
        startup: list[Step] | None = None,
        shutdown: list[Step] | None = None,
        started_at: float | None = None,
        ready: bool = False,
        draining: bool = False,
    ) -> None:
        self.config = config
        self.live = live
        self.registry = registry
        self.accountant = accountant
        self.capture = capture
        self.approvals = approvals
        self.health = health
        self.dispatcher = dispatcher
        self.control = control
        self.shadow = shadow
        self.vllm_pricing = vllm_pricing
        self.inference = inference
        self.upstream_models = upstream_models
        self.startup = [] if startup is None else startup
        self.shutdown = [] if shutdown is None else shutdown
        self.started_at = time.time() if started_at is None else started_at
        self.ready = ready
        self.draining = draining

    @property
    def runtime(self) -> Runtime:
        """The runtime in force."""
        return self.live.runtime

    @property
    def in_flight(self) -> int:
        """Inference requests being served now."""
        return self.inference.in_flight

    def begin_drain(self) -> None:
        """Shutdown is coming (SIGTERM): readiness fails from now on; requests are still served."""
        self.draining = True

    async def start(self) -> None:
        for step in self.startup:
            await step()
        self.ready = True

    async def close(self) -> None:
        """Run every shutdown step in order. A step that fails or takes longer than
        ``server.shutdown_step_timeout_s`` is logged and the next one runs: the ledger still flushes when the
        shadow's close hangs, and the process exits."""
        self.ready = False
        limit = self.config.server.shutdown_step_timeout_s
        for step in self.shutdown:
            name = getattr(step, "__qualname__", repr(step))
            try:
                async with asyncio.timeout(limit):
                    await step()
            except TimeoutError:
                log.error(
                    "shutdown: %s did not finish within %g s (server.shutdown_step_timeout_s); going on. "
                    "Tasks still running:%s",
                    name,
                    limit,
                    running_tasks(),
                )
            except Exception:
                log.exception("shutdown: %s failed; going on", name)


def running_tasks() -> str:
    """The event loop's other tasks, one line each: name and where each one waits (for a hang's log line)."""
    me = asyncio.current_task()
    lines: list[str] = []
    for task in asyncio.all_tasks():
        if task is me or len(lines) >= SHOWN_TASKS:
            continue
        frames = task.get_stack()
        if frames:
            f = frames[-1]
            where = f"{f.f_code.co_qualname} ({f.f_code.co_filename}:{f.f_lineno})"
        else:
            where = "not started"
        lines.append(f"\n  {task.get_name()}: {where}")
    return "".join(lines) or " none"
