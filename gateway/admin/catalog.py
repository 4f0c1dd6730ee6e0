"""``/admin/models`` and ``/admin/backends``: what clients may ask for and where it is served.

Changes are validated like the config file (a model naming an unknown backend, a rule naming a deleted model:
400 with the failing path). Backend credentials (``api_key`` and every header value) are never shown
(``gateway.credentials``); sending ``***`` back keeps the stored one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway.admin.body_schemas import body_doc, json_body, json_object, model_schema, named
from gateway.credentials import kept, shown_config
from gateway.deps import State
from gateway.errors import ApiError, already_exists, no_such
from routing.health import STATE_NAMES
from serving.config import BackendConfig, ModelConfig

_MODEL = model_schema(ModelConfig)
_BACKEND = model_schema(BackendConfig)


def build_models_router() -> APIRouter:
    router = APIRouter(prefix="/models", tags=["admin: models"])

    @router.get("", summary="List models (exact names and globs)")
    async def list_models(st: State) -> dict[str, Any]:
        rt = st.runtime
        return {
            "version": rt.version,
            "models": {
                n: m.model_dump(mode="json", exclude_defaults=True) for n, m in rt.config.models.items()
            },
        }

    @router.post(
        "",
        status_code=201,
        summary="Create a model",
        openapi_extra=body_doc(named(_MODEL, "model"), "The model's name plus its config."),
    )
    async def create_model(request: Request, st: State) -> dict[str, Any]:
        body = dict(json_object(await json_body(request)))
        name = body.pop("name", None)
        if not isinstance(name, str) or not name:
            raise _name_required()

        def add(doc: dict[str, Any]) -> None:
            if name in doc["models"]:
                raise already_exists("model", name)
            doc["models"][name] = body

        pv = await st.control.change(f"create model {name}", add)
        return {"version": pv.version, "name": name, "model": body}

    @router.get("/{name:path}", summary="Get one model")
    async def get_model(name: str, st: State) -> dict[str, Any]:
        m = st.runtime.config.models.get(name)
        if m is None:
            raise no_such("model", name)
        return {
            "version": st.runtime.version,
            "name": name,
            "model": m.model_dump(mode="json", exclude_defaults=True),
        }

    @router.put("/{name:path}", summary="Create or replace a model", openapi_extra=body_doc(_MODEL))
    async def put_model(name: str, request: Request, st: State) -> dict[str, Any]:
        body = json_object(await json_body(request))
        created = name not in st.runtime.config.models

        def put(doc: dict[str, Any]) -> None:
            doc["models"][name] = body

        pv = await st.control.change(f"{'create' if created else 'update'} model {name}", put)
        return {"version": pv.version, "name": name, "model": body}

    @router.delete("/{name:path}", summary="Delete a model")
    async def delete_model(name: str, st: State) -> dict[str, Any]:
        def delete(doc: dict[str, Any]) -> None:
            if name not in doc["models"]:
                raise no_such("model", name)
            del doc["models"][name]

        pv = await st.control.change(f"delete model {name}", delete)
        return {"version": pv.version, "deleted": name}

    return router


def build_backends_router() -> APIRouter:
    router = APIRouter(prefix="/backends", tags=["admin: backends"])

    @router.get("", summary="List backends (credentials redacted)")
    async def list_backends(st: State) -> dict[str, Any]:
        rt = st.runtime
        return {
            "version": rt.version,
            "backends": {n: shown_config(b) for n, b in rt.config.backends.items()},
        }

    @router.post(
        "",
        status_code=201,
        summary="Create a backend",
        openapi_extra=body_doc(named(_BACKEND, "backend"), "The backend's name plus its config."),
    )
    async def create_backend(request: Request, st: State) -> dict[str, Any]:
        body = dict(json_object(await json_body(request)))
        name = body.pop("name", None)
        if not isinstance(name, str) or not name:
            raise _name_required()

        def add(doc: dict[str, Any]) -> None:
            if name in doc["backends"]:
                raise already_exists("backend", name)
            doc["backends"][name] = kept(body, None)

        pv = await st.control.change(f"create backend {name}", add)
        return {
            "version": pv.version,
            "name": name,
            "backend": shown_config(st.runtime.config.backends[name]),
        }

    @router.get("/{name}", summary="Get one backend (credentials redacted)")
    async def get_backend(name: str, st: State) -> dict[str, Any]:
        b = st.runtime.config.backends.get(name)
        if b is None:
            raise no_such("backend", name)
        return {"version": st.runtime.version, "name": name, "backend": shown_config(b)}

    @router.get("/{name}/health", summary="Endpoints of a backend: breaker state, load, vLLM health")
    async def backend_health(name: str, st: State) -> dict[str, Any]:
        backend = st.registry.get(name)
        if backend is None:
            raise no_such("backend", name)
        pool = getattr(backend, "pool", None)
        eps = pool.endpoints if pool is not None else []
        by_url = {e.url: e for e in eps}
        endpoints = []
        for url in backend.info.endpoints:
            e = by_url.get(url)
            state = st.health.state_of(name, url)
            endpoints.append(
                {
                    "url": url,
                    "circuit": STATE_NAMES[state],
                    "healthy": e.healthy if e is not None else True,
                    "outstanding": e.outstanding if e is not None else None,
                    "waiting": e.waiting if e is not None else None,
                    "running": e.running if e is not None else None,
                }
            )
        return {
            "name": name,
            "up": st.health.is_up(name),
            "in_flight": getattr(backend, "in_flight", None),
            "endpoints": endpoints,
        }

    @router.put("/{name}", summary="Create or replace a backend", openapi_extra=body_doc(_BACKEND))
    async def put_backend(name: str, request: Request, st: State) -> dict[str, Any]:
        body = json_object(await json_body(request))
        created = name not in st.runtime.config.backends

        def put(doc: dict[str, Any]) -> None:
            doc["backends"][name] = kept(body, doc["backends"].get(name))

        pv = await st.control.change(f"{'create' if created else 'update'} backend {name}", put)
        return {
            "version": pv.version,
            "name": name,
            "backend": shown_config(st.runtime.config.backends[name]),
        }

    @router.delete("/{name}", summary="Delete a backend")
    async def delete_backend(name: str, st: State) -> dict[str, Any]:
        def delete(doc: dict[str, Any]) -> None:
            if name not in doc["backends"]:
                raise no_such("backend", name)
            del doc["backends"][name]

        pv = await st.control.change(f"delete backend {name}", delete)
        st.health.forget(name)
        return {"version": pv.version, "deleted": name}

    return router


def _name_required() -> ApiError:
    return ApiError(
        400,
        "name is required and must be a non-empty string.",
        "invalid_request_error",
        "missing_required_parameter",
        "name",
    )
