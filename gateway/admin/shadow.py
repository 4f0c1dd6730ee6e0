"""Shadow testing's admin faces: the report (JSON and an HTML page with charts), pair records, and promotion.

- ``GET /admin/shadow/report``: per route (and task) over a window: counts, comparator results with 95% intervals,
  judge non-inferiority, latency percentiles both sides with the paired ratio, error rates, cost per 1,000
  requests, projected monthly saving, and the verdict from ``promote_when``.
- ``GET /admin/shadow/report.html``: the same as a self-contained page (inline SVG charts, no external assets).
- ``GET /admin/shadow/pairs`` and ``/admin/shadow/pairs/{request_id}``: the pair records themselves.
- ``POST /admin/routes/{name}/promote``: start the guarded ramp; ``GET /admin/routes/{name}/promotion``: its state
  and every step/rollback event; ``POST /admin/routes/{name}/promote/rollback``: roll back by hand.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from accounting.spend_report import parse_time
from gateway.admin.body_schemas import json_body
from gateway.admin.shadow_html import render_report
from gateway.deps import State
from gateway.errors import ApiError, bad_request
from routing.shadow.promotion import PromotionError
from routing.shadow.record import OUTCOMES
from routing.shadow.reporting import build_report, publish_gauges
from wire.errors import error_body

_WINDOW = "Start (inclusive): unix seconds, ISO date or datetime. Default: 7 days before ``to``."


def _window(from_: str | None, to: str | None) -> tuple[float | None, float | None]:
    try:
        return parse_time(from_), parse_time(to, end=True)
    except ValueError:
        raise bad_request(
            "from/to must be unix seconds, an ISO date or an ISO datetime", "from", "invalid_value"
        ) from None


def _promotion_error(exc: PromotionError) -> ApiError:
    code = {404: "not_found", 409: "conflict", 503: "unavailable"}.get(exc.status, "invalid_value")
    err = ApiError(exc.status, exc.message, "invalid_request_error", code)
    if exc.detail:
        err.raw_body = error_body(exc.message, "invalid_request_error", code, detail=exc.detail)
    return err


async def _report(
    st: Any, route: str | None, task: str | None, from_: str | None, to: str | None, by_task: bool = True
) -> dict[str, Any]:
    since, until = _window(from_, to)
    shadow = st.shadow
    promos = {d["route"]: d for d in await shadow.hub.store.promotions()}
    report = await build_report(
        shadow.hub.store,
        st.runtime.policy,
        route=route,
        task=task,
        since=since,
        until=until,
        by_task=by_task,
        promotions=promos,
        feedback=st.capture.service.store.feedback_for,
    )
    metrics = shadow.hub.metrics
    if metrics is not None and route is None and task is None and from_ is None and to is None:
        publish_gauges(metrics, report)
    report["object"] = "shadow.report"
    return report


def build_router() -> APIRouter:
    router = APIRouter(tags=["admin: shadow"])

    @router.get("/shadow/report", summary="Shadow test report (JSON)")
    async def report(
        st: State,
        route: Annotated[str | None, Query(description="Only this route")] = None,
        task: Annotated[str | None, Query(description="Only pairs of this task")] = None,
        from_: Annotated[str | None, Query(alias="from", description=_WINDOW)] = None,
        to: Annotated[
            str | None, Query(description="End: unix seconds, ISO date or datetime. Default: now.")
        ] = None,
        by_task: Annotated[bool, Query(description="Include a breakdown per task")] = True,
    ) -> dict[str, Any]:
        return await _report(st, route, task, from_, to, by_task)

    @router.get(
        "/shadow/report.html",
        summary="Shadow test report (HTML page with charts)",
        response_class=HTMLResponse,
    )
    async def report_html(
        st: State,
        route: Annotated[str | None, Query(description="Only this route")] = None,
        task: Annotated[str | None, Query(description="Only pairs of this task")] = None,
        from_: Annotated[str | None, Query(alias="from", description=_WINDOW)] = None,
        to: Annotated[str | None, Query(description="End. Default: now.")] = None,
    ) -> HTMLResponse:
        doc = await _report(st, route, task, from_, to, by_task=True)
        return HTMLResponse(render_report(doc))

    @router.get("/shadow/pairs", summary="Shadow pair records (newest last)")
    async def pairs(
        st: State,
        route: Annotated[str | None, Query(description="Only this route")] = None,
        outcome: Annotated[str | None, Query(description="Only this outcome: " + ", ".join(OUTCOMES))] = None,
        from_: Annotated[str | None, Query(alias="from", description=_WINDOW)] = None,
        to: Annotated[str | None, Query(description="End. Default: now.")] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> dict[str, Any]:
        if outcome is not None and outcome not in OUTCOMES:
            raise bad_request(f"outcome must be one of {', '.join(OUTCOMES)}", "outcome", "invalid_value")
        since, until = _window(from_, to)
        store = st.shadow.hub.store
        await store.flush()
        since_ = since if since is not None else time.time() - 7 * 86400
        rows = await store.pairs(route, since_, until, limit=limit, outcome=outcome)  # only those are read
        return {"object": "list", "data": [p.to_dict() for p in rows], "count": len(rows)}

    @router.get("/shadow/pairs/{request_id}", summary="One pair record, by request id")
    async def pair(st: State, request_id: str) -> dict[str, Any]:
        store = st.shadow.hub.store
        await store.flush()
        p = await store.pair(request_id)
        if p is None:
            raise ApiError(
                404, f"There is no pair for request {request_id!r}.", "invalid_request_error", "not_found"
            )
        return p.to_dict()

    @router.get("/shadow/status", summary="Shadow runner state: calls in flight and queued per route")
    async def status(st: State) -> dict[str, Any]:
        hub = st.shadow.hub
        return {
            "lanes": hub.queue_depth(),
            "counters": dict(hub.stats),
            "promotion_leader": st.shadow.promotion.leader,
            "promotions": {
                r: {"candidate": p.candidate, "baseline": p.baseline, "ramping": p.ramping}
                for r, p in hub.promotions.items()
            },
        }

    @router.post(
        "/routes/{name}/promote",
        summary="Promote a route's shadow candidate (guarded ramp)",
        description=(
            "Ramps the candidate into the route's targets through ``shadow.promotion.steps``, each step after its "
            "dwell time or request count, reverse-shadowing the baseline, and rolls back when a guard trips. "
            "Refused (409) unless the shadow verdict is ``ready`` or ``force`` is true. Optional body fields "
            "override the route's promotion settings for this run: ``steps``, ``dwell_s``, ``dwell_requests``, "
            "``reverse_sample_rate``, ``guards``, ``check_interval_s``."
        ),
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "force": {"type": "boolean"},
                                "steps": {"type": "array", "items": {"type": "number"}},
                                "dwell_s": {"type": "number"},
                                "dwell_requests": {"type": "integer"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def promote(st: State, name: str, request: Request) -> dict[str, Any]:
        body = await json_body(request) or {}
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        force = bool(body.pop("force", False))
        try:
            doc = await st.shadow.promotion.start_promotion(name, force=force, overrides=body or None)
        except PromotionError as exc:
            raise _promotion_error(exc) from None
        except ValueError as exc:  # invalid overrides
            raise bad_request(
                str(exc).splitlines()[0] if str(exc) else "invalid promotion settings"
            ) from None
        return {"object": "shadow.promotion", **doc}

    @router.get("/routes/{name}/promotion", summary="A route's promotion state and its step/rollback events")
    async def promotion(st: State, name: str) -> dict[str, Any]:
        return {"object": "shadow.promotion", **await st.shadow.promotion.status(name)}

    @router.post("/routes/{name}/promote/rollback", summary="Roll a promotion back by hand")
    async def rollback(st: State, name: str, request: Request) -> dict[str, Any]:
        body = await json_body(request) or {}
        reason = str(body.get("reason") or "manual rollback") if isinstance(body, dict) else "manual rollback"
        try:
            doc = await st.shadow.promotion.rollback(name, reason)
        except PromotionError as exc:
            raise _promotion_error(exc) from None
        return {"object": "shadow.promotion", **doc}

    return router
