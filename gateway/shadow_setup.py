"""Wiring shadow testing into the gateway: the hub (request path), the promotion controller, and the adapter
that lets promotions change routes through the routing policy store (so each step is a versioned policy change
in the route history)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.errors import ApiError
from routing.shadow.hub import ShadowHub
from routing.shadow.promotion import PromotionController, RouteMutation
from routing.shadow.store import open_store

if TYPE_CHECKING:
    from gateway.state import GatewayState

log = logging.getLogger("pointsman.shadow")


class ControlRouteEditor:
    """``RouteEditor`` over the gateway's policy control (``GatewayState.control``)."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state

    async def update_route(self, name: str, mutate: RouteMutation, summary: str) -> int:
        def apply(doc: dict[str, Any]) -> None:
            for r in doc.get("routes", []):
                if isinstance(r, dict) and r.get("name") == name:
                    mutate(r)
                    return
            raise ApiError(404, f"There is no route {name!r}.", "invalid_request_error", "not_found")

        pv = await self.state.control.change(summary, apply, source="shadow")
        version: int = pv.version
        return version


class Shadow:
    """What ``GatewayState`` owns for shadow testing."""

    def __init__(self, state: GatewayState) -> None:
        cfg = state.config
        metrics = getattr(state.accountant, "metrics", None)
        self.hub = ShadowHub(
            open_store(cfg.redis.url, cfg.server.data_dir),
            state.dispatcher,
            state.accountant,
            lambda: state.runtime.policy,
            cfg.server.request_timeout_s,
            metrics,
        )
        editor = ControlRouteEditor(state) if hasattr(state, "control") else None
        self.promotion = PromotionController(self.hub, lambda: state.runtime.policy, editor, metrics)

    async def start(self) -> None:
        await self.hub.start()
        await self.promotion.start()

    async def close(self) -> None:
        await self.promotion.close()
        await self.hub.close()
