"""``/admin/routes``: routing rules (list, get, create, update, delete, reorder, replace all), explain,
history and rollback. Every change is validated like the config file and applied atomically."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.admin.body_schemas import body_doc, json_body, json_object, model_schema
from gateway.credentials import shown_policy
from gateway.deps import State
from gateway.errors import ApiError, already_exists, no_such, to_api_error
from gateway.keys import ClientKey, presented_key
from routing.config import RouteConfig
from routing.errors import RoutingError
from routing.rules import RouteInput
from routing.tags import collect_tags

_ROUTE = model_schema(RouteConfig)


class ExplainRequest(BaseModel):
    """A request to explain: what a client would send. Nothing is sent to any model."""

    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any]
    """The request body (``model`` required; ``metadata`` and ``user`` are used)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Request headers: ``X-Pointsman-Task``, ``X-Pointsman-Tags``, ``X-Pointsman-Sticky``, and optionally
    ``Authorization: Bearer <client key>`` to route as that key."""
    key: str | None = None
    """Name of the client key to route as (its team and default tags apply)."""


class ReorderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: list[str]
    """Every rule name, in the new order."""


MAX_VERSION = 2**63 - 1  # policy versions are stored as 64-bit integers


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_VERSION)
    """The version whose routes, models and backends become current again (as a new version)."""


def route_out(r: RouteConfig) -> dict[str, Any]:
    out: dict[str, Any] = r.model_dump(mode="json", exclude_defaults=True)
    return out


def _index(routes: list[Any], name: str) -> int:
    for i, r in enumerate(routes):
        if isinstance(r, dict) and r.get("name") == name:
            return i
    raise no_such("route", name)


def _explain_key(st: State, req: ExplainRequest) -> ClientKey | None:
    rt = st.runtime
    if req.key is not None:
        for k in rt.keys.by_hash.values():
            if k.name == req.key:
                return k
        raise no_such("client key", req.key)
    headers = {k.lower(): v for k, v in req.headers.items()}
    secret = presented_key(headers.get("authorization"), headers.get("api-key"))
    if secret:
        key = rt.keys.lookup(secret)
        if key is None:
            raise ApiError(
                400,
                "The Authorization header carries no known client key.",
                "invalid_request_error",
                "invalid_api_key",
                "headers",
            )
        return key
    return None


def build_router() -> APIRouter:
    router = APIRouter(prefix="/routes", tags=["admin: routes"])

    @router.get("", summary="List routing rules (in evaluation order)")
    async def list_routes(st: State) -> dict[str, Any]:
        rt = st.runtime
        return {"version": rt.version, "routes": [route_out(r) for r in rt.config.routes]}

    @router.put(
        "",
        summary="Replace every routing rule (pointsman routes apply)",
        openapi_extra=body_doc(
            {
                "type": "object",
                "properties": {"routes": {"type": "array", "items": _ROUTE}},
                "required": ["routes"],
            },
        ),
    )
    async def replace_routes(
        request: Request,
        st: State,
        dry_run: Annotated[bool, Query(description="Validate only; change nothing.")] = False,
    ) -> dict[str, Any]:
        body = json_object(await json_body(request))
        if set(body) != {"routes"}:
            raise ApiError(
                400,
                "The body must be an object with exactly one field, routes.",
                "invalid_request_error",
                "invalid_value",
            )
        routes = body["routes"]

        def put(doc: dict[str, Any]) -> None:
            doc["routes"] = routes

        pv = await st.control.change(
            f"replace all routes ({len(routes) if isinstance(routes, list) else '?'})", put, dry_run=dry_run
        )
        return {
            "version": pv.version,
            "dry_run": dry_run,
            "routes": [r.get("name") for r in pv.doc["routes"]],
        }

    @router.post(
        "",
        status_code=201,
        summary="Create a routing rule",
        openapi_extra=body_doc(_ROUTE, "The rule, as in the config file's routes list."),
    )
    async def create_route(
        request: Request,
        st: State,
        position: Annotated[
            int | None, Query(ge=0, le=1_000_000, description="Index to insert at (default: last).")
        ] = None,
    ) -> dict[str, Any]:
        rule = json_object(await json_body(request))
        name = rule.get("name")

        def add(doc: dict[str, Any]) -> None:
            routes = doc["routes"]
            if isinstance(name, str) and any(isinstance(r, dict) and r.get("name") == name for r in routes):
                raise already_exists("route", name)
            routes.insert(len(routes) if position is None else position, rule)

        pv = await st.control.change(f"create route {name}", add)
        return {"version": pv.version, "route": route_out(st.runtime.policy.by_name[str(name)].cfg)}

    @router.post("/reorder", summary="Reorder the routing rules")
    async def reorder_routes(req: ReorderRequest, st: State) -> dict[str, Any]:
        def reorder(doc: dict[str, Any]) -> None:
            by_name = {r.get("name"): r for r in doc["routes"]}
            if sorted(req.order) != sorted(by_name) or len(set(req.order)) != len(req.order):
                raise ApiError(
                    400,
                    "order must list every rule name exactly once.",
                    "invalid_request_error",
                    "invalid_value",
                    "order",
                )
            doc["routes"] = [by_name[n] for n in req.order]

        pv = await st.control.change("reorder routes", reorder)
        return {"version": pv.version, "routes": req.order}

    @router.post("/explain", summary="Explain the routing decision for a request (calls no model)")
    async def explain(req: ExplainRequest, st: State) -> dict[str, Any]:
        rt = st.runtime
        model = req.body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(
                400,
                "body.model is required.",
                "invalid_request_error",
                "missing_required_parameter",
                "body.model",
            )
        key = _explain_key(st, req)
        headers = {k.lower(): v for k, v in req.headers.items()}
        tags = collect_tags(
            headers.get("x-pointsman-task"),
            headers.get("x-pointsman-tags"),
            req.body.get("metadata"),
            key.tags if key else {},
        )
        user = req.body.get("user")
        inp = RouteInput(
            model,
            tags,
            key.name if key else "",
            key.team if key else None,
            headers.get("x-pointsman-sticky") or None,
            user if isinstance(user, str) and user else None,
        )
        eligible = rt.consent.eligibility(key.name, key.team, key.scope) if key else None
        try:
            out = rt.policy.explain(inp, eligible)
        except RoutingError as exc:
            raise to_api_error(exc) from None
        consent = None
        if key is not None:
            approved, source = rt.consent.decision(key.name, key.team)
            consent = {
                "approved": approved,
                "decided_by": source,
                "team": key.team,
                "required": rt.consent.required,
                "third_party_backends": sorted(rt.consent.backends),
            }
        return {
            "policy_version": rt.version,
            "key": key.name if key else None,
            **out,
            "third_party_consent": consent,
        }

    @router.get("/history", summary="Policy version history (newest first)")
    async def history(
        st: State,
        limit: Annotated[int, Query(ge=1, le=1000, description="Versions to return.")] = 50,
    ) -> dict[str, Any]:
        versions = await st.control.history(limit)
        current = st.runtime.version
        return {
            "version": current,
            "history": [
                {
                    "version": v.version,
                    "created_at": v.created_at,
                    "source": v.source,
                    "summary": v.summary,
                    "in_force": v.version == current,
                    "routes": [r.get("name") for r in v.doc.get("routes", []) if isinstance(r, dict)],
                }
                for v in versions
            ],
        }

    @router.get("/history/{version}", summary="One policy version (credentials redacted)")
    async def version_doc(version: Annotated[int, Path(ge=1, le=MAX_VERSION)], st: State) -> dict[str, Any]:
        v = await st.control.get(version)
        if v is None:
            raise ApiError(
                404, f"There is no policy version {version}.", "invalid_request_error", "not_found"
            )
        return {
            "version": v.version,
            "created_at": v.created_at,
            "source": v.source,
            "summary": v.summary,
            "policy": shown_policy(v.doc),
        }

    @router.post("/rollback", summary="Roll routes, models and backends back to version N (as a new version)")
    async def rollback(req: RollbackRequest, st: State) -> dict[str, Any]:
        pv = await st.control.rollback(req.version)
        return {
            "version": pv.version,
            "rolled_back_to": req.version,
            "routes": [r.get("name") for r in pv.doc["routes"]],
        }

    @router.get("/{name}", summary="Get one routing rule")
    async def get_route(name: str, st: State) -> dict[str, Any]:
        rule = st.runtime.policy.by_name.get(name)
        if rule is None:
            raise no_such("route", name)
        return {"version": st.runtime.version, "index": rule.index, "route": route_out(rule.cfg)}

    @router.put(
        "/{name}",
        summary="Update (replace) a routing rule",
        openapi_extra=body_doc(_ROUTE, "The whole rule; a different name renames it."),
    )
    async def update_route(name: str, request: Request, st: State) -> dict[str, Any]:
        rule = json_object(await json_body(request))
        rule.setdefault("name", name)

        def update(doc: dict[str, Any]) -> None:
            routes = doc["routes"]
            i = _index(routes, name)
            new = rule.get("name")
            if new != name and any(isinstance(r, dict) and r.get("name") == new for r in routes):
                raise already_exists("route", str(new))
            routes[i] = rule

        pv = await st.control.change(f"update route {name}", update)
        new_name = str(rule["name"])
        return {"version": pv.version, "route": route_out(st.runtime.policy.by_name[new_name].cfg)}

    @router.delete("/{name}", summary="Delete a routing rule")
    async def delete_route(name: str, st: State) -> dict[str, Any]:
        def delete(doc: dict[str, Any]) -> None:
            del doc["routes"][_index(doc["routes"], name)]

        pv = await st.control.change(f"delete route {name}", delete)
        return {"version": pv.version, "deleted": name}

    return router
