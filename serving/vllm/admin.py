"""Admin operations on vLLM backends: model discovery and LoRA adapters on every endpoint of a backend.

These run on the admin path (never on the request path). Each talks to all endpoints of the backend at
once and reports what every endpoint said, so an operator sees a fleet that disagrees.

- Discovery: ``GET {endpoint}/models`` (the endpoint URLs include ``/v1``). vLLM lists the served base
  model(s) with ``parent: null`` and each LoRA adapter with ``parent`` = its base model id.
- LoRA: ``POST {endpoint}/load_lora_adapter`` ``{"lora_name", "lora_path"[, "load_inplace"]}`` and
  ``POST {endpoint}/unload_lora_adapter`` ``{"lora_name"}``; the server must run with ``--enable-lora`` and
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``. Loading is all-or-nothing: when any endpoint fails, the
  endpoints that loaded the adapter in this call unload it again, so the fleet never serves a model on only
  some of its endpoints.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from serving.config import VLLMBackendConfig
from serving.errors import UpstreamError, UpstreamHTTPError, UpstreamProtocolError
from serving.http_backend import OpenAIHTTPBackend

ADMIN_TIMEOUT_S = 60.0
"""Loading an adapter reads its weights; allow for a large one on a busy server."""
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")


class VLLMAdminError(Exception):
    """An admin operation could not be carried out; ``status`` is the HTTP status the admin API answers."""

    def __init__(self, message: str, status: int = 400, results: Sequence[EndpointResult] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.results = list(results)


def is_vllm(backend: object) -> bool:
    return isinstance(backend, OpenAIHTTPBackend) and isinstance(backend.cfg, VLLMBackendConfig)


def server_root(endpoint: str) -> str:
    """``http://h:8000/v1`` -> ``http://h:8000`` (``/health``, ``/metrics`` and ``/tokenize`` live there)."""
    return endpoint[:-3] if endpoint.endswith("/v1") else endpoint


def check_adapter_name(name: str) -> str:
    if not _ADAPTER_NAME.match(name):
        raise VLLMAdminError(
            "adapter name must be 1-128 characters: letters, digits and . _ : / @ + - (not starting with a symbol)"
        )
    return name


@dataclass(slots=True)
class EndpointResult:
    endpoint: str
    ok: bool
    status: int | None
    """The endpoint's HTTP status; None when it could not be reached."""
    message: str
    changed: bool = False
    """True when this call changed the endpoint (loaded or unloaded the adapter)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "ok": self.ok,
            "status": self.status,
            "message": self.message,
            "changed": self.changed,
        }


@dataclass(slots=True)
class ServedModel:
    id: str
    parent: str | None
    """The base model id for a LoRA adapter, None for a base model."""
    root: str | None
    max_model_len: int | None
    endpoints: list[str] = field(default_factory=list)
    """Endpoints that list it."""

    @property
    def is_adapter(self) -> bool:
        return self.parent is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "adapter" if self.is_adapter else "base",
            "parent": self.parent,
            "root": self.root,
            "max_model_len": self.max_model_len,
            "endpoints": list(self.endpoints),
        }


@dataclass(slots=True)
class Discovery:
    backend: str
    models: list[ServedModel]
    errors: dict[str, str]
    """endpoint -> why it could not be listed."""
    endpoints: list[str]

    def get(self, model_id: str) -> ServedModel | None:
        for m in self.models:
            if m.id == model_id:
                return m
        return None

    @property
    def consistent(self) -> bool:
        """Every reachable endpoint lists the same models (and none was unreachable)."""
        n = len(self.endpoints)
        return not self.errors and all(len(m.endpoints) == n for m in self.models)


def _message(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:500]
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:500]
        if isinstance(doc.get("message"), str):
            return str(doc["message"])[:500]
    return body.decode("utf-8", "replace").strip()[:500]


def _require_vllm(backend: object) -> OpenAIHTTPBackend:
    if not is_vllm(backend):
        raise VLLMAdminError("not a vLLM backend (type: vllm)", status=400)
    assert isinstance(backend, OpenAIHTTPBackend)
    return backend


async def _each(
    endpoints: Sequence[str], fn: Callable[[str], Awaitable[EndpointResult]]
) -> list[EndpointResult]:
    return list(await asyncio.gather(*(fn(ep) for ep in endpoints)))


async def discover(backend: object, timeout_s: float = 10.0) -> Discovery:
    """What every endpoint of a vLLM backend serves, merged by model id (in first-seen order)."""
    b = _require_vllm(backend)
    endpoints = b.pool.urls()
    merged: dict[str, ServedModel] = {}
    errors: dict[str, str] = {}

    async def one(ep: str) -> tuple[str, list[dict[str, Any]] | str]:
        try:
            return ep, await b.endpoint_models(ep, timeout_s)
        except UpstreamHTTPError as exc:
            return ep, f"HTTP {exc.status}: {_message(exc.body)}"
        except UpstreamProtocolError as exc:
            return ep, exc.message
        except UpstreamError as exc:
            return ep, f"unreachable: {exc.message}"

    for ep, got in await asyncio.gather(*(one(ep) for ep in endpoints)):
        if isinstance(got, str):
            errors[ep] = got
            continue
        for d in got:
            mid = str(d["id"])
            m = merged.get(mid)
            if m is None:
                parent = d.get("parent")
                root = d.get("root")
                mml = d.get("max_model_len")
                m = merged[mid] = ServedModel(
                    id=mid,
                    parent=parent if isinstance(parent, str) and parent else None,
                    root=root if isinstance(root, str) else None,
                    max_model_len=mml if isinstance(mml, int) and not isinstance(mml, bool) else None,
                )
            m.endpoints.append(ep)
    return Discovery(backend=b.name, models=list(merged.values()), errors=errors, endpoints=endpoints)


async def load_adapter(
    backend: object, name: str, path: str, *, replace: bool = False, timeout_s: float = ADMIN_TIMEOUT_S
) -> list[EndpointResult]:
    """Load a LoRA adapter on every endpoint of a vLLM backend (all or nothing).

    An endpoint that already serves ``name`` counts as loaded (unchanged) unless ``replace`` is set, which
    reloads it in place from ``path`` (a newly post-trained version under the same name). On any failure the
    endpoints changed by this call are rolled back and ``VLLMAdminError`` carries every endpoint's result.
    """
    b = _require_vllm(backend)
    check_adapter_name(name)
    if not path:
        raise VLLMAdminError("adapter path is required")
    body: dict[str, Any] = {"lora_name": name, "lora_path": path}
    if replace:
        body["load_inplace"] = True

    async def one(ep: str) -> EndpointResult:
        try:
            status, raw = await b.admin_request("POST", f"{ep}/load_lora_adapter", body, timeout_s)
        except UpstreamError as exc:
            return EndpointResult(ep, False, None, f"unreachable: {exc.message}")
        msg = _message(raw)
        if status == 200:
            return EndpointResult(ep, True, status, msg, changed=True)
        if status == 400 and "already been loaded" in msg:
            return EndpointResult(ep, True, status, msg, changed=False)
        return EndpointResult(ep, False, status, msg)

    results = await _each(b.pool.urls(), one)
    failed = [r for r in results if not r.ok]
    if failed:
        changed = [r.endpoint for r in results if r.changed]
        if changed:
            await unload_on(b, name, changed, timeout_s)
        first = failed[0]
        status = _admin_status(first)
        raise VLLMAdminError(
            f"loading adapter {name!r} failed on {len(failed)} of {len(results)} endpoints "
            f"({first.endpoint}: {first.message}); endpoints that loaded it were rolled back",
            status=status,
            results=results,
        )
    return results


def _admin_status(r: EndpointResult) -> int:
    """How the admin API reports a failed endpoint: its 4xx as is (bad path, LoRA disabled), else 502."""
    if r.status is not None and 400 <= r.status < 500:
        return r.status
    return 502


async def unload_on(
    b: OpenAIHTTPBackend, name: str, endpoints: Sequence[str], timeout_s: float = ADMIN_TIMEOUT_S
) -> list[EndpointResult]:
    """Unload ``name`` from the given endpoints; one that does not have it counts as done (unchanged)."""

    async def one(ep: str) -> EndpointResult:
        try:
            status, raw = await b.admin_request(
                "POST", f"{ep}/unload_lora_adapter", {"lora_name": name}, timeout_s
            )
        except UpstreamError as exc:
            return EndpointResult(ep, False, None, f"unreachable: {exc.message}")
        msg = _message(raw)
        if status == 200:
            return EndpointResult(ep, True, status, msg, changed=True)
        if status in (400, 404) and ("cannot be found" in msg or "not found" in msg.lower()):
            return EndpointResult(ep, True, status, msg, changed=False)
        return EndpointResult(ep, False, status, msg)

    return await _each(endpoints, one)


async def unload_adapter(
    backend: object, name: str, *, timeout_s: float = ADMIN_TIMEOUT_S
) -> list[EndpointResult]:
    """Unload a LoRA adapter from every endpoint; an endpoint without it counts as done (unchanged)."""
    b = _require_vllm(backend)
    check_adapter_name(name)
    results = await unload_on(b, name, b.pool.urls(), timeout_s)
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        raise VLLMAdminError(
            f"unloading adapter {name!r} failed on {len(failed)} of {len(results)} endpoints "
            f"({first.endpoint}: {first.message})",
            status=_admin_status(first),
            results=results,
        )
    return results
