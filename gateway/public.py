"""Public non-inference endpoints: models, health, readiness, metrics (a ``GET`` of the last three is answered on
the fast path, ``gateway.probes``; these routes serve the rest and the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from gateway.deps import get_state, require_client
from gateway.errors import not_found
from gateway.keys import ClientKey
from gateway.probes import LIVE, readiness
from gateway.state import GatewayState
from routing.models import ResolvedModel

router = APIRouter()


def _model_obj(m: ResolvedModel, created: int) -> dict[str, Any]:
    return {"id": m.name, "object": "model", "created": created, "owned_by": m.owned_by}


@router.get(
    "/v1/models",
    tags=["models"],
    summary="List models",
    description="Every model this key may use: the configured names, and for glob entries (`gpt-*`) the ids "
    "of the upstream's own model list that they match (read in the background and cached).",
)
async def list_models(
    key: ClientKey = Depends(require_client), state: GatewayState = Depends(get_state)
) -> dict[str, Any]:
    created = int(state.started_at)
    served = await state.upstream_models.current()
    listing = state.runtime.policy.models.listing(served)
    data = [_model_obj(m, created) for m in listing if key.may_use(m.name)]
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id:path}", tags=["models"], summary="Retrieve a model")
async def get_model(
    model_id: str, key: ClientKey = Depends(require_client), state: GatewayState = Depends(get_state)
) -> dict[str, Any]:
    m = state.runtime.policy.models.resolve(model_id)
    if m is None or not key.may_use(model_id):
        raise not_found(f"The model `{model_id}` does not exist or you do not have access to it.", "model")
    return _model_obj(m, int(state.started_at))


@router.get("/healthz", tags=["health"], summary="Liveness")
async def healthz() -> dict[str, str]:
    return LIVE


@router.get("/readyz", tags=["health"], summary="Readiness: config loaded, backends known")
async def readyz(response: Response, state: GatewayState = Depends(get_state)) -> dict[str, Any]:
    response.status_code, doc = readiness(state)
    return doc


@router.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
async def metrics(state: GatewayState = Depends(get_state)) -> Response:
    body, ctype = state.accountant.metrics_payload()
    return Response(body, media_type=ctype)
