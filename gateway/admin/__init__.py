"""The admin API under ``/admin`` (admin key only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from gateway.admin import spend
from gateway.deps import get_state, require_admin
from gateway.state import GatewayState


def build_admin_router(state: GatewayState) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

    @router.get("/status", summary="Gateway status")
    async def status(st: GatewayState = Depends(get_state)) -> dict[str, Any]:
        rt = st.runtime
        return {
            "policy_version": rt.version,
            "in_flight": st.in_flight,
            "backends": sorted(rt.config.backends),
            "routes": [r.name for r in rt.config.routes],
        }

    router.include_router(spend.build_router())
    return router
