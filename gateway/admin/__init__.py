"""The admin API under ``/admin`` (admin key only): policy (routes, models, backends, keys) and status."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends

from gateway.admin import capture, catalog, consent, datasets, debug, keys, pricing, routes, spend, vllm
from gateway.admin import shadow as shadow_admin
from gateway.deps import State, require_admin
from gateway.state import GatewayState


def build_admin_router(state: GatewayState) -> APIRouter:
    """The admin router. Handlers reach the gateway state through the request (``Depends(get_state)``), never
    a closure, so the router is built once per process and shared by every app (building it is most of the
    cost of creating an app)."""
    return _admin_router()


@functools.cache
def _admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

    @router.get("/status", summary="Gateway status")
    async def status(st: State) -> dict[str, Any]:
        rt = st.runtime
        return {
            "policy_version": rt.version,
            "policy_store": type(st.control.store).__name__ if st.control.store is not None else None,
            "policy_store_error": st.control.last_error,
            "in_flight": st.in_flight,
            "backends": sorted(rt.config.backends),
            "routes": [r.name for r in rt.config.routes],
        }

    router.include_router(routes.build_router())
    router.include_router(catalog.build_models_router())
    router.include_router(catalog.build_backends_router())
    router.include_router(keys.build_router())
    router.include_router(spend.build_router())
    router.include_router(pricing.build_router())
    router.include_router(vllm.build_router())
    router.include_router(shadow_admin.build_router())
    router.include_router(capture.build_router())
    router.include_router(consent.build_router())
    router.include_router(datasets.build_router())
    router.include_router(debug.build_router())
    return router
