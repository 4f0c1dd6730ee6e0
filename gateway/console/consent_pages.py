"""The console's Consent page: third-party processing consent per team — whether its request data may reach
third-party backends, who decided and when, approve or revoke (with who and a note), each team's history — plus
the default (``consent.third_party``), the third-party backends and the keys with decisions of their own. Reads
and changes go through ``/admin/consent`` and ``/admin/teams/{team}/consent``; every change is a POST with the
session's CSRF token, by an admin login."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from gateway.console.admin_calls import AdminError
from gateway.console.pages import Ctx, back, change, view


async def _page(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
    async with ctx.admin() as admin:
        overview = await admin.get("/consent")
        teams: list[dict[str, Any]] = [
            await admin.get(f"/teams/{quote(t['team'], safe='')}/consent") for t in overview["teams"]
        ]
    return ctx.page("consent.html", "consent", status, overview=overview, teams=teams, error=error)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/consent")
    async def consent(request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        return await _page(ctx)

    async def decide(request: Request, team: str, approved: bool) -> Response:
        ctx, form = await change(request)
        body = {"approved": approved, "by": form.get("by") or "console", "note": form.get("note") or None}
        try:
            async with ctx.admin() as admin:
                await admin.send("PUT", f"/teams/{quote(team, safe='')}/consent", body)
        except AdminError as exc:
            return await _page(ctx, error=exc.message, status=400)
        return back("/console/consent")

    @router.post("/consent/{team}/approve")
    async def approve(team: str, request: Request) -> Response:
        return await decide(request, team, True)

    @router.post("/consent/{team}/revoke")
    async def revoke(team: str, request: Request) -> Response:
        return await decide(request, team, False)

    return router
