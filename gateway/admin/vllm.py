"""``/admin/backends/{name}/...`` for vLLM backends: model discovery, LoRA adapters, measured pricing.

- ``GET  /admin/backends/{name}/models``: what every endpoint serves (``/v1/models``: base models and LoRA
  adapters), which gateway model names map to each, and gateway models the fleet does not serve.
- ``POST /admin/backends/{name}/adapters``: load a LoRA adapter on *every* endpoint (all or nothing), then
  register it as a gateway model (``{backend, adapter}``) through the policy store, so it is routable (and,
  with ``shadow``, shadow-tested on a route) on every replica without a restart. ``replace: true`` reloads a
  newly post-trained version in place under the same name.
- ``DELETE /admin/backends/{name}/adapters/{adapter}``: unregister the gateway models that use it (refused
  with 400 while a route still names one), then unload it from every endpoint.
- ``GET  /admin/backends/{name}/pricing``: the measured throughput and the price it gives
  (``accounting.selfhosted``, fed by ``gateway.vllm_pricing``).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.admin.body_schemas import body_doc, json_body, json_object, model_schema
from gateway.deps import State
from gateway.errors import ApiError, no_such
from gateway.state import GatewayState
from serving.config import VLLMBackendConfig
from serving.vllm.admin import (
    EndpointResult,
    VLLMAdminError,
    check_adapter_name,
    discover,
    is_vllm,
    load_adapter,
    unload_adapter,
    unload_on,
)
from wire.config_model import StrictModel


class ShadowAttach(BaseModel):
    """Start shadow-testing the new adapter on a route: the route's ``shadow`` gets ``model`` = the adapter's
    gateway model name, on top of its current shadow settings and the ones given here."""

    model_config = ConfigDict(extra="allow", frozen=True)
    route: str = Field(min_length=1)
    """Name of the route whose traffic is mirrored to the adapter."""


class AdapterLoad(StrictModel):
    """Load a LoRA adapter on every endpoint of a vLLM backend and register it as a model."""

    model_config = ConfigDict(populate_by_name=True)
    name: str = Field(min_length=1, max_length=128)
    """The adapter's name on the vLLM servers (``lora_name``); clients' model id unless ``model`` is given."""
    path: str = Field(min_length=1, max_length=4096)
    """Where the vLLM servers read it: a directory on their hosts (or what their LoRA resolvers accept)."""
    model: str | None = Field(default=None, min_length=1, max_length=256)
    """The gateway model name to register (default: ``name``)."""
    register_model: bool = Field(default=True, alias="register")
    """``register``: register the gateway model (false: only load the adapter on the servers)."""
    replace: bool = False
    """Reload in place when the servers already have an adapter of this name (a new version)."""
    owned_by: str | None = None
    """Shown in ``/v1/models``."""
    shadow: ShadowAttach | None = None
    """Also put the model in a route's ``shadow`` (same policy change as the registration)."""


def _admin_error(exc: VLLMAdminError) -> ApiError:
    code = "adapter_error" if exc.results else "invalid_value"
    err = ApiError(
        exc.status, exc.message, "invalid_request_error" if exc.status < 500 else "upstream_error", code
    )
    if exc.results:
        err.raw_body = orjson.dumps(
            {
                "error": {
                    "message": exc.message,
                    "type": err.type,
                    "param": None,
                    "code": code,
                    "endpoints": [r.as_dict() for r in exc.results],
                }
            }
        )
    return err


def _vllm_backend(st: GatewayState, name: str) -> Any:
    cfg = st.runtime.config.backends.get(name)
    if cfg is None:
        raise no_such("backend", name)
    backend = st.registry.get(name)
    if not isinstance(cfg, VLLMBackendConfig) or backend is None or not is_vllm(backend):
        raise ApiError(
            400, f"Backend {name!r} is not a vLLM backend (type: vllm).", "invalid_request_error", "not_vllm"
        )
    return backend


def _gateway_models(st: GatewayState, backend: str) -> dict[str, str]:
    """Gateway model name -> the upstream id it sends, for exact-named models on ``backend``."""
    out: dict[str, str] = {}
    for n, m in st.runtime.config.models.items():
        if m.backend == backend and not any(c in n for c in "*?["):
            out[n] = m.adapter or m.upstream_model or n
    return out


def build_router() -> APIRouter:
    router = APIRouter(prefix="/backends", tags=["admin: vLLM"])

    @router.get(
        "/{name}/models", summary="Discover what a vLLM backend serves (base models and LoRA adapters)"
    )
    async def backend_models(name: str, st: State) -> dict[str, Any]:
        backend = _vllm_backend(st, name)
        d = await discover(backend)
        mapped = _gateway_models(st, name)
        served = {m.id for m in d.models}
        models = []
        for m in d.models:
            doc = m.as_dict()
            doc["registered_as"] = sorted(n for n, up in mapped.items() if up == m.id)
            models.append(doc)
        return {
            "backend": name,
            "endpoints": d.endpoints,
            "consistent": d.consistent,
            "errors": d.errors,
            "models": models,
            # gateway models whose upstream id no reachable endpoint lists (e.g. an adapter lost on a restart)
            "unserved": sorted(n for n, up in mapped.items() if up not in served)
            if len(d.errors) < len(d.endpoints)
            else [],
        }

    @router.post(
        "/{name}/adapters",
        status_code=201,
        summary="Load a LoRA adapter on every endpoint of a vLLM backend and register it as a model",
        openapi_extra=body_doc(model_schema(AdapterLoad)),
    )
    async def load(name: str, request: Request, st: State) -> dict[str, Any]:
        raw = json_object(await json_body(request))
        try:
            req = AdapterLoad.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ApiError(
                400,
                f"{loc}: {first['msg']}" if loc else str(first["msg"]),
                "invalid_request_error",
                "invalid_value",
                loc or None,
            ) from None
        backend = _vllm_backend(st, name)
        try:
            check_adapter_name(req.name)
        except VLLMAdminError as exc:
            raise ApiError(400, exc.message, "invalid_request_error", "invalid_value", "name") from None
        model = req.model or req.name
        existing = st.runtime.config.models.get(model)
        if (
            req.register_model
            and existing is not None
            and (existing.backend != name or existing.adapter != req.name)
        ):
            raise ApiError(
                409,
                f"A model named {model!r} already exists and is not adapter {req.name!r} on "
                f"backend {name!r}.",
                "invalid_request_error",
                "already_exists",
                "model",
            )
        if req.shadow is not None and not req.register_model:
            raise ApiError(
                400, "shadow needs register: true.", "invalid_request_error", "invalid_value", "shadow"
            )
        try:
            results = await load_adapter(backend, req.name, req.path, replace=req.replace)
        except VLLMAdminError as exc:
            raise _admin_error(exc) from None
        version = st.runtime.version
        if req.register_model:
            try:
                pv = await st.control.change(
                    f"load adapter {req.name} on {name} as model {model}", _register(name, req, model)
                )
            except Exception:
                await _rollback(backend, req.name, results)
                raise
            version = pv.version
        return {
            "backend": name,
            "adapter": req.name,
            "model": model if req.register_model else None,
            "version": version,
            "endpoints": [r.as_dict() for r in results],
            "shadow_route": req.shadow.route if req.shadow is not None else None,
        }

    @router.delete(
        "/{name}/adapters/{adapter}", summary="Unregister a LoRA adapter's models and unload it everywhere"
    )
    async def unload(name: str, adapter: str, st: State, unregister: bool = True) -> dict[str, Any]:
        backend = _vllm_backend(st, name)
        try:
            check_adapter_name(adapter)
        except VLLMAdminError as exc:
            raise ApiError(400, exc.message, "invalid_request_error", "invalid_value", "adapter") from None
        removed: list[str] = []
        version = st.runtime.version
        if unregister:
            names = [
                n for n, m in st.runtime.config.models.items() if m.backend == name and m.adapter == adapter
            ]
            if names:

                def drop(doc: dict[str, Any]) -> None:
                    for n in names:
                        doc["models"].pop(n, None)

                pv = await st.control.change(
                    f"unload adapter {adapter} on {name}: delete models {names}", drop
                )
                version = pv.version
                removed = names
        try:
            results = await unload_adapter(backend, adapter)
        except VLLMAdminError as exc:
            raise _admin_error(exc) from None
        return {
            "backend": name,
            "adapter": adapter,
            "unregistered": removed,
            "version": version,
            "endpoints": [r.as_dict() for r in results],
        }

    @router.get("/{name}/pricing", summary="Measured throughput and the self-hosted price it gives")
    async def pricing(name: str, st: State) -> dict[str, Any]:
        cfg = st.runtime.config.backends.get(name)
        if cfg is None:
            raise no_such("backend", name)
        if not isinstance(cfg, VLLMBackendConfig):
            raise ApiError(
                400,
                f"Backend {name!r} is not a vLLM backend (type: vllm).",
                "invalid_request_error",
                "not_vllm",
            )
        report = st.accountant.measured.backend_report(name)
        if report is None:
            return {
                "backend": name,
                "gpu_hour_usd": None,
                "measured": None,
                "note": "no gpu_hour_usd configured for this backend: nothing is measured",
            }
        return report

    return router


def _register(backend: str, req: AdapterLoad, model: str) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"backend": backend, "adapter": req.name}
        if req.owned_by:
            entry["owned_by"] = req.owned_by
        doc["models"][model] = entry
        if req.shadow is not None:
            routes = doc.get("routes", [])
            route = next(
                (r for r in routes if isinstance(r, dict) and r.get("name") == req.shadow.route), None
            )
            if route is None:
                raise no_such("route", req.shadow.route)
            extra = {k: v for k, v in req.shadow.model_dump().items() if k != "route"}
            shadow = copy.deepcopy(route.get("shadow") or {})
            shadow.update(extra)
            shadow["model"] = model
            route["shadow"] = shadow

    return mutate


async def _rollback(backend: Any, adapter: str, results: list[EndpointResult]) -> None:
    """The registration failed: unload the adapter from the endpoints this request loaded it on."""
    changed = [r.endpoint for r in results if r.changed]
    if changed:
        await unload_on(backend, adapter, changed)
