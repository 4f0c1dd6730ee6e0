"""The console's pages under ``/console``: login, overview, spend, keys and data-capture consent (third-party
processing consent: ``consent_pages``).

Every page needs a valid session cookie (else the login page); every change is a POST that needs the session's
CSRF token and an admin login (a read-only login gets 403). Data comes from, and changes go through, the admin
API in-process (``admin_calls``). No secret is rendered, except a new key's once, in the answer that created it.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.console.admin_calls import AdminCalls, AdminError
from gateway.console.charts import bars_svg
from gateway.console.session import COOKIE, Session, Sessions, login_role
from gateway.deps import get_state
from gateway.errors import ApiError

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(t)))
_HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
NAV = (
    ("", "Overview"),
    ("routes", "Routes"),
    ("shadow", "Shadow"),
    ("spend", "Spend"),
    ("data", "Data"),
    ("consent", "Consent"),
    ("keys", "Keys"),
)


def _not_found() -> ApiError:
    return ApiError(404, "Unknown path /console.", "invalid_request_error", "not_found")


def sessions_for(request: Request) -> Sessions:
    """The session signer in force (404 when the console is off or the admin API has no key)."""
    rt = get_state(request).runtime
    console = rt.config.console
    if not console.enabled or not rt.admin_key:
        raise _not_found()
    return Sessions(rt.admin_key, console.read_only_key, console.session_ttl_s)


def render(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(name).render(nav=NAV, **ctx), status_code=status, headers=_HEADERS)


class Ctx:
    """One request's console context: its session, CSRF token and a way to the admin API."""

    def __init__(self, request: Request, sessions: Sessions, session: Session) -> None:
        self.request = request
        self.session = session
        self.csrf = sessions.csrf(session)
        self.sessions = sessions

    def admin(self) -> AdminCalls:
        return AdminCalls(self.request.app, get_state(self.request).runtime.admin_key or "")

    def page(self, name: str, active: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return render(name, status, csrf=self.csrf, role=self.session.role, active=active, **ctx)


def _session(request: Request) -> tuple[Sessions, Session | None]:
    sessions = sessions_for(request)
    return sessions, sessions.read(request.cookies.get(COOKIE), time.time())


async def view(request: Request) -> Ctx | Response:
    """A GET page's context, or the redirect to the login page."""
    sessions, session = _session(request)
    if session is None:
        return RedirectResponse("/console/login", status_code=303, headers=_HEADERS)
    return Ctx(request, sessions, session)


async def change(request: Request, need_admin: bool = True) -> tuple[Ctx, dict[str, str]]:
    """A POST's context and form, once its session, CSRF token and (``need_admin``) right to change were
    checked."""
    sessions, session = _session(request)
    if session is None:
        raise ApiError(401, "Log in to the console first.", "authentication_error", "no_session")
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    if not sessions.csrf_ok(session, form.get("csrf")):
        raise ApiError(403, "Missing or wrong CSRF token.", "permission_error", "csrf")
    if need_admin and not session.can_change:
        raise ApiError(
            403, "A read-only console login cannot change anything.", "permission_error", "read_only"
        )
    return Ctx(request, sessions, session), form


_EXPORT_FILTERS = ("task", "team", "route", "since", "until", "holdout", "limit")
"""The dataset-export filters the Data page's form passes on (``GET /admin/datasets/export``)."""


def back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=_HEADERS)


def _today() -> tuple[str, str]:
    now = time.gmtime()
    return time.strftime("%Y-%m-%d", now), time.strftime("%Y-%m-01", now)


def _usd(v: Any) -> float:
    return float(Decimal(str(v or 0)))


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        sessions_for(request)
        return render("login.html", error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        sessions = sessions_for(request)
        rt = get_state(request).runtime
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        role = login_role(rt.admin_key, rt.config.console.read_only_key, form.get("key", ""))
        if role is None:
            return render("login.html", 401, error="That key is not a console key.")
        resp = back("/console")
        https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        resp.set_cookie(
            COOKIE,
            sessions.issue(role, time.time()),
            max_age=int(sessions.ttl_s),
            path="/console",
            httponly=True,
            samesite="strict",
            secure=https,
        )
        return resp

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        await change(request, need_admin=False)
        resp = back("/console/login")
        resp.delete_cookie(COOKIE, path="/console")
        return resp

    @router.get("")
    async def overview(request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        today, month = _today()
        st = get_state(request)
        try:
            async with ctx.admin() as admin:
                day = (await admin.get("/spend", **{"from": today}))["total"]
                mon = (await admin.get("/spend", **{"from": month}))["total"]
                groups = {
                    g: (await admin.get("/spend", group_by=g, **{"from": month}))["data"]
                    for g in ("route", "task", "team", "requested_model", "backend")
                }
        except AdminError as exc:  # e.g. the ledger's database is unreachable: say so, keep the console up
            return ctx.page(
                "overview.html",
                "",
                exc.status,
                error=exc.message,
                day=None,
                month=None,
                groups={},
                share_svg="",
            )
        facts = st.accountant.catalog.backends
        hosted = {"frontier": 0.0, "self-hosted": 0.0}
        for row in groups["backend"]:
            b = facts.get(str(row["backend"]))
            hosted["self-hosted" if b is not None and b.self_hosted else "frontier"] += row["requests"]
        total = sum(hosted.values()) or 1.0
        share = [(k, round(100 * v / total, 1)) for k, v in hosted.items()]
        return ctx.page(
            "overview.html",
            "",
            error=None,
            day=day,
            month=mon,
            groups=groups,
            share_svg=bars_svg(share, "Requests this month: frontier vs self-hosted", unit="%"),
        )

    @router.get("/spend")
    async def spend(request: Request, group_by: str = "route,model", since: str = "") -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        since = since or _today()[1]
        try:
            async with ctx.admin() as admin:
                doc = await admin.get("/spend", group_by=group_by, **{"from": since})
                budgets = await _budgets(admin, get_state(request))
        except AdminError as exc:
            return ctx.page(
                "spend.html",
                "spend",
                exc.status,
                error=exc.message,
                rows=[],
                dims=[],
                chart="",
                group_by=group_by,
                since=since,
                total=None,
                budgets=[],
            )
        dims = doc["group_by"]
        rows = sorted(doc["data"], key=lambda r: -_usd(r["cost_usd"]))
        chart = bars_svg(
            [(" / ".join(str(r[d]) for d in dims) or "all", _usd(r["cost_usd"])) for r in rows[:15]],
            "Spend (USD)",
        )
        return ctx.page(
            "spend.html",
            "spend",
            error=None,
            rows=rows,
            dims=dims,
            chart=chart,
            group_by=group_by,
            since=since,
            total=doc["total"],
            budgets=budgets,
        )

    @router.get("/spend.csv")
    async def spend_csv(request: Request, group_by: str = "route,model", since: str = "") -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        try:
            async with ctx.admin() as admin:
                resp = await admin.request(
                    "GET",
                    "/spend",
                    params={"group_by": group_by, "from": since or _today()[1], "format": "csv"},
                )
        except AdminError as exc:
            return Response(exc.message, status_code=exc.status, media_type="text/plain; charset=utf-8")
        return Response(
            resp.content,
            media_type="text/csv; charset=utf-8",
            headers={**_HEADERS, "content-disposition": 'attachment; filename="pointsman-spend.csv"'},
        )

    @router.get("/keys")
    async def keys(request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        return await _keys_page(ctx, created=None, error=None)

    @router.post("/keys")
    async def create_key(request: Request) -> Response:
        ctx, form = await change(request)
        body: dict[str, Any] = {"name": form.get("name", "")}
        if form.get("team"):
            body["team"] = form["team"]
        if form.get("models"):
            body["models"] = [m.strip() for m in form["models"].split(",") if m.strip()]
        try:
            async with ctx.admin() as admin:
                created = await admin.send("POST", "/keys", body)
        except AdminError as exc:
            return await _keys_page(ctx, created=None, error=exc.message, status=400)
        return await _keys_page(ctx, created=created, error=None)

    @router.post("/keys/{name}/revoke")
    async def revoke_key(name: str, request: Request) -> Response:
        ctx, _ = await change(request)
        async with ctx.admin() as admin:
            await admin.send("DELETE", f"/keys/{name}")
        return back("/console/keys")

    async def _data_page(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
        async with ctx.admin() as admin:
            teams = (await admin.get("/capture/teams"))["data"]
        known = sorted(get_state(ctx.request).accountant.catalog.teams | {t["team"] for t in teams})
        by_team = {t["team"]: t for t in teams}
        return ctx.page("data.html", "data", status, teams=[(t, by_team.get(t)) for t in known], error=error)

    @router.get("/data")
    async def data(request: Request) -> Response:
        ctx = await view(request)
        if isinstance(ctx, Response):
            return ctx
        return await _data_page(ctx)

    @router.post("/data/export")
    async def export_dataset(request: Request) -> Response:
        """The fine-tuning dataset of captured traffic (``GET /admin/datasets/export``) as a zip download: an
        admin action (it hands out captured, redacted content), so a POST with the CSRF token."""
        ctx, form = await change(request)
        params = {k: form[k] for k in _EXPORT_FILTERS if form.get(k)}
        params["from_shadow_wins"] = "true" if form.get("from_shadow_wins") else "false"
        try:
            async with ctx.admin() as admin:
                resp = await admin.request("GET", "/datasets/export", params=params)
        except AdminError as exc:
            return await _data_page(ctx, error=exc.message, status=400)
        disposition = resp.headers.get("content-disposition", 'attachment; filename="dataset.zip"')
        return Response(
            resp.content,
            media_type="application/zip",
            headers={**_HEADERS, "content-disposition": disposition},
        )

    @router.post("/data/{team}/approve")
    async def approve(team: str, request: Request) -> Response:
        ctx, form = await change(request)
        async with ctx.admin() as admin:
            await admin.send("POST", f"/teams/{team}/capture", {"approved_by": form.get("by") or "console"})
        return back("/console/data")

    @router.post("/data/{team}/revoke")
    async def revoke(team: str, request: Request) -> Response:
        ctx, form = await change(request)
        async with ctx.admin() as admin:
            await admin.request(
                "DELETE", f"/teams/{team}/capture", params={"by": form.get("by") or "console"}
            )
        return back("/console/data")

    return router


async def _keys_page(ctx: Ctx, created: Any, error: str | None, status: int = 200) -> Response:
    async with ctx.admin() as admin:
        listed = (await admin.get("/keys"))["keys"]
    return ctx.page("keys.html", "keys", status, keys=listed, created=created, error=error)


async def _budgets(admin: AdminCalls, st: Any) -> list[dict[str, Any]]:
    """Each configured budget with what was spent against it today and this month, and what is left."""
    today, month = _today()
    out = []
    for b in st.runtime.config.accounting.budgets:
        day = (await admin.get("/spend", **{"from": today, b.scope: b.name}))["total"]
        mon = (await admin.get("/spend", **{"from": month, b.scope: b.name}))["total"]
        row: dict[str, Any] = {"scope": b.scope, "name": b.name}
        for label, cap, spent in (("daily", b.daily_usd, day), ("monthly", b.monthly_usd, mon)):
            used = Decimal(str(spent["cost_usd"]))
            row[label] = (
                None if cap is None else {"cap": cap, "spent": used, "left": max(Decimal(0), cap - used)}
            )
        out.append(row)
    return out
