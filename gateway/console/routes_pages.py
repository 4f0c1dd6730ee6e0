"""The console's Routes pages: the rules in evaluation order, one rule's view and edit (the config check's
errors shown at their field path, e.g. ``routes[2].targets[0].weight``), explain, the policy history with each
version's diff against the one before, and rollback. Reads and changes go through ``/admin/routes``."""

from __future__ import annotations

import difflib
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from gateway.console.admin_calls import AdminCalls, AdminError
from gateway.console.pages import Ctx, back, change, view
from routing.tags import parse_tags_header

HISTORY_SHOWN = 30


def version_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """A unified diff of two policy documents as indented JSON (keys sorted); all lines added when there is
    no version before."""
    a = json.dumps(before, indent=2, sort_keys=True).splitlines() if before is not None else []
    b = json.dumps(after, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm="", n=2))


def explain_body(model: str, tags: str, task: str, key: str) -> dict[str, Any]:
    """The ``/admin/routes/explain`` request for what the explain form holds."""
    headers = {}
    if task.strip():
        headers["X-Pointsman-Task"] = task.strip()
    if tags.strip():
        headers["X-Pointsman-Tags"] = ", ".join(f"{k}={v}" for k, v in parse_tags_header(tags).items())
    body: dict[str, Any] = {"body": {"model": model.strip()}, "headers": headers}
    if key.strip():
        body["key"] = key.strip()
    return body


async def _list_page(ctx: Ctx, admin: AdminCalls, status: int = 200, **extra: Any) -> Response:
    listed = await admin.get("/routes")
    keys = [k["name"] for k in (await admin.get("/keys"))["keys"]]
    page: dict[str, Any] = {"explained": None, "explain_error": None, "asked": None, "error": None}
    page.update(extra)
    return ctx.page(
        "routes.html", "routes", status, version=listed["version"], routes=listed["routes"], keys=keys, **page
    )


async def _rule_page(
    ctx: Ctx, name: str, text: str | None = None, error: AdminError | None = None, saved: int | None = None
) -> Response:
    async with ctx.admin() as admin:
        got = await admin.get(f"/routes/{name}")
    rule = got["route"]
    return ctx.page(
        "route.html",
        "routes",
        400 if error else 200,
        rule_name=name,
        index=got["index"],
        version=got["version"],
        text=text if text is not None else json.dumps(rule, indent=2),
        error=error,
        saved=saved,
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console/routes", include_in_schema=False)

    @router.get("")
    async def routes(request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        async with ctx.admin() as admin:
            return await _list_page(ctx, admin)

    @router.get("/explain")
    async def explain(
        request: Request, model: str = "", tags: str = "", task: str = "", key: str = ""
    ) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        asked = {"model": model, "tags": tags, "task": task, "key": key}
        async with ctx.admin() as admin:
            try:
                out = await admin.send("POST", "/routes/explain", explain_body(model, tags, task, key))
            except AdminError as exc:
                return await _list_page(ctx, admin, 400, asked=asked, explain_error=exc.message)
            return await _list_page(ctx, admin, asked=asked, explained=out)

    @router.get("/history")
    async def history(request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        async with ctx.admin() as admin:
            doc = await admin.get("/routes/history", limit=HISTORY_SHOWN)
        return ctx.page(
            "route_history.html", "routes", current=doc["version"], versions=doc["history"], error=None
        )

    @router.get("/history/{version}")
    async def version(version: int, request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        async with ctx.admin() as admin:
            doc = await admin.get(f"/routes/history/{version}")
            try:
                before = (
                    (await admin.get(f"/routes/history/{version - 1}"))["policy"] if version > 1 else None
                )
            except AdminError:
                before = None
        return ctx.page(
            "route_version.html",
            "routes",
            v=doc,
            diff=version_diff(before, doc["policy"]),
        )

    @router.post("/rollback")
    async def rollback(request: Request) -> Response:
        ctx, form = await change(request)
        async with ctx.admin() as admin:
            try:
                await admin.send("POST", "/routes/rollback", {"version": int(form.get("version", "0"))})
            except (AdminError, ValueError) as exc:
                msg = exc.message if isinstance(exc, AdminError) else "version must be a number"
                doc = await admin.get("/routes/history", limit=HISTORY_SHOWN)
                return ctx.page(
                    "route_history.html",
                    "routes",
                    400,
                    current=doc["version"],
                    versions=doc["history"],
                    error=msg,
                )
        return back("/console/routes/history")

    @router.get("/{name}")
    async def rule(name: str, request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        try:
            return await _rule_page(ctx, name)
        except AdminError:
            return back("/console/routes")

    @router.post("/{name}")
    async def save(name: str, request: Request) -> Response:
        ctx, form = await change(request)
        text = form.get("rule", "")
        try:
            body = json.loads(text)
        except ValueError as exc:
            return await _rule_page(ctx, name, text, AdminError(400, f"Not JSON: {exc}", None))
        try:
            async with ctx.admin() as admin:
                out = await admin.send("PUT", f"/routes/{name}", body)
        except AdminError as exc:
            return await _rule_page(ctx, name, text, exc)
        new = str(out["route"]["name"])
        return await _rule_page(ctx, new, saved=int(out["version"]))

    return router
