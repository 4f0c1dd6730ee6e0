"""The console's Shadow pages: per route the verdict and its reasons, the report's figures and charts (the
admin report's own route section, ``gateway.admin.shadow_html``), promote and roll back with confirmation, the
promotion timeline; and a pair browser (both answers side by side when captured, comparator scores, judge
reasons). Reads and changes go through the admin API's shadow operations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from markupsafe import Markup

from gateway.admin.shadow_html import SECTION_CSS, route_section
from gateway.console.admin_calls import AdminError
from gateway.console.pages import Ctx, back, change, view
from routing.shadow.record import OUTCOMES

PAIRS_SHOWN = 100


def answer_text(out: Any) -> str:
    """The text of one side's captured output (its message content, else the whole output as given)."""
    if not isinstance(out, dict):
        return "" if out is None else str(out)
    for k in ("text", "content", "output_text"):
        if isinstance(out.get(k), str):
            return str(out[k])
    return str(out)


async def _shadow_page(ctx: Ctx, status: int = 200, error: str | None = None) -> Response:
    async with ctx.admin() as admin:
        report = await admin.get("/shadow/report")
        routes = []
        for r in report.get("routes") or []:
            promo = await admin.get(f"/routes/{r['route']}/promotion")
            routes.append(
                {
                    "name": r["route"],
                    "verdict": r["verdict"].get("verdict"),
                    "section": Markup(route_section(r)),  # the admin report escapes every part it prints
                    "promotion": promo.get("promotion"),
                    "events": promo.get("events") or [],
                }
            )
    return ctx.page("shadow.html", "shadow", status, routes=routes, css=Markup(SECTION_CSS), error=error)


async def _confirmed(
    request: Request, what: str, call: Callable[[dict[str, str]], tuple[str, dict[str, Any]]], route: str
) -> Response:
    """A promotion change, once its form's confirmation box was ticked; the admin API's refusal is shown on
    the page."""
    ctx, form = await change(request)
    if form.get("confirm") != "yes":
        return await _shadow_page(ctx, 400, f"Tick the confirmation box to {what}.")
    path, body = call(form)
    try:
        async with ctx.admin() as admin:
            await admin.send("POST", f"/routes/{route}{path}", body)
    except AdminError as exc:
        return await _shadow_page(ctx, 400, exc.message)
    return back("/console/shadow")


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console/shadow", include_in_schema=False)

    @router.get("")
    async def shadow(request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        return await _shadow_page(ctx)

    @router.get("/pairs")
    async def pairs(request: Request, route: str = "", outcome: str = "") -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        async with ctx.admin() as admin:
            doc = await admin.get(
                "/shadow/pairs", route=route or None, outcome=outcome or None, limit=PAIRS_SHOWN
            )
        rows = list(reversed(doc["data"]))  # newest first
        return ctx.page(
            "shadow_pairs.html", "shadow", pairs=rows, route=route, outcome=outcome, outcomes=OUTCOMES
        )

    @router.get("/pairs/{request_id}")
    async def pair(request_id: str, request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        async with ctx.admin() as admin:
            p = await admin.get(f"/shadow/pairs/{request_id}")
        cap = p.get("capture") or None
        answers = (
            {side: answer_text(cap.get(side)) for side in ("primary", "candidate")}
            if cap is not None
            else None
        )
        return ctx.page("shadow_pair.html", "shadow", p=p, answers=answers)

    @router.post("/{route}/promote")
    async def promote(route: str, request: Request) -> Response:
        return await _confirmed(
            request, "promote", lambda f: ("/promote", {"force": f.get("force") == "yes"}), route
        )

    @router.post("/{route}/rollback")
    async def rollback(route: str, request: Request) -> Response:
        return await _confirmed(
            request,
            "roll back",
            lambda f: ("/promote/rollback", {"reason": f.get("reason") or "console"}),
            route,
        )

    return router
