"""Public non-inference endpoints: models, health, readiness, metrics (a ``GET`` of the last three is answered on
the fast path, ``gateway.probes``; these routes serve the rest and the OpenAPI schema)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response

from gateway.deps import get_state, require_client
from gateway.errors import not_found
from gateway.keys import ClientKey
from gateway.probes import LIVE, readiness
from gateway.runtime import Runtime
from gateway.state import GatewayState
from routing.models import ResolvedModel
from routing.rules import RouteInput

router = APIRouter()


def _model_obj(m: ResolvedModel, created: int) -> dict[str, Any]:
    return {"id": m.name, "object": "model", "created": created, "owned_by": m.owned_by}


def _usable(rt: Runtime, key: ClientKey) -> Callable[[str], bool]:
    """Whether a request from ``key`` naming a model, with no tags of its own, would be served rather than refused
    with 403: what the inference handler applies. The key's ``models`` scope on the name asked for, then the
    routing decision's eligibility (``Policy.refusal``): the rule such a request matches (by that name, the key's
    own tags, the key, its team) must leave a target or fallback inside the key's scope and, for a team (or key)
    without third-party consent, on an in-house backend. Reads only the runtime in force (no upstream calls)."""
    eligible = rt.consent.eligibility(key.name, key.team, key.scope)
    policy = rt.policy

    def usable(model: str) -> bool:
        if not key.may_use(model):
            return False
        if eligible is None:  # an unscoped key of an approved team: nothing to filter
            return True
        return policy.refusal(RouteInput(model, key.tags, key.name, key.team), eligible) is None

    return usable


@router.get(
    "/v1/models",
    tags=["models"],
    summary="List models",
    description="Every model this key may use: the configured names, and for glob entries (`gpt-*`) the ids "
    "of the upstream's own model list that they match (read in the background and cached), less those a request "
    "from this key naming them (with no tags) would be refused: outside its `models` scope, or routed only to "
    "models outside it or, for a team without third-party processing consent, only to third-party backends.",
)
async def list_models(
    key: ClientKey = Depends(require_client), state: GatewayState = Depends(get_state)
) -> dict[str, Any]:
    rt = state.runtime
    created = int(state.started_at)
    served = await state.upstream_models.current()
    usable = _usable(rt, key)
    data = [_model_obj(m, created) for m in rt.policy.models.listing(served) if usable(m.name)]
    return {"object": "list", "data": data}


@router.get(
    "/v1/models/{model_id:path}",
    tags=["models"],
    summary="Retrieve a model",
    description="A model this key may use (as `/v1/models` lists them); 404 otherwise.",
)
async def get_model(
    model_id: str, key: ClientKey = Depends(require_client), state: GatewayState = Depends(get_state)
) -> dict[str, Any]:
    rt = state.runtime
    m = rt.policy.models.resolve(model_id)
    if m is None or not _usable(rt, key)(model_id):
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
