"""Wiring shadow testing into the gateway: the hub (request path), the promotion controller, and the adapter
that lets promotions change routes through the routing policy store (so each step is a versioned policy change
in the route history)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from accounting.accountant import Accountant
from gateway.config import GatewayConfig
from gateway.errors import ApiError
from routing.dispatch import Dispatcher
from routing.policy import Policy
from routing.shadow.hub import ShadowHub
from routing.shadow.promotion import PromotionController, RouteEditor, RouteMutation
from routing.shadow.store import open_store
from routing.store import PolicyVersion

log = logging.getLogger("pointsman.shadow")


class PolicyChanges(Protocol):
    """Versioned policy changes (``gateway.policy_control.PolicyControl``)."""

    async def change(
        self,
        summary: str,
        mutate: Callable[[dict[str, Any]], None],
        *,
        source: str = ...,
        dry_run: bool = ...,
    ) -> PolicyVersion: ...


class ControlRouteEditor:
    """``RouteEditor`` over the gateway's policy control."""

    def __init__(self, control: PolicyChanges) -> None:
        self.control = control

    async def update_route(self, name: str, mutate: RouteMutation, summary: str) -> int:
        def apply(doc: dict[str, Any]) -> None:
            for r in doc.get("routes", []):
                if isinstance(r, dict) and r.get("name") == name:
                    mutate(r)
                    return
            raise ApiError(404, f"There is no route {name!r}.", "invalid_request_error", "not_found")

        pv = await self.control.change(summary, apply, source="shadow")
        return pv.version


class Shadow:
    """The gateway's shadow testing: the hub on the request path and the promotion controller."""

    def __init__(
        self,
        cfg: GatewayConfig,
        dispatcher: Dispatcher,
        accountant: Accountant,
        policy_of: Callable[[], Policy],
        editor: RouteEditor | None,
    ) -> None:
        metrics = accountant.metrics
        self.hub = ShadowHub(
            open_store(cfg.redis.url, cfg.server.data_dir, cfg.database.shared_dsn),
            dispatcher,
            accountant,
            policy_of,
            cfg.server.request_timeout_s,
            metrics,
            cfg.server.stream_bounds,
        )
        self.promotion = PromotionController(self.hub, policy_of, editor, metrics)

    async def start(self) -> None:
        await self.hub.start()
        await self.promotion.start()

    async def close(self) -> None:
        await self.promotion.close()
        await self.hub.close()
