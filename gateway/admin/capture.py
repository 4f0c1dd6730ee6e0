"""Admin API for data capture: team approvals, whether a route captures (and why not), traces, feedback.

- ``GET/POST/DELETE /admin/teams/{team}/capture``: a team's consent to capture, recorded with who and when.
- ``GET /admin/capture/teams``: every team's approval state.
- ``GET /admin/capture/status?route=&team=&key=``: whether such requests are captured, and if not why
  (e.g. "data capture not approved for team X").
- ``GET /admin/capture/stats``, ``POST /admin/capture/flush``, ``POST /admin/capture/purge``.
- ``GET /admin/capture/traces``, ``GET /admin/capture/traces/{request_id}``: captured (redacted) traces.
- ``GET /admin/feedback``, ``GET /admin/feedback/summary``: feedback joined with traces and ledger records.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from accounting.capture import export
from gateway.deps import get_state
from gateway.errors import ApiError, bad_request
from gateway.state import GatewayState

State = Annotated[GatewayState, Depends(get_state)]
_TEAM = r"^[A-Za-z0-9_.:@-]{1,128}$"


def parse_when(v: str | None, end: bool = False, name: str = "since") -> float | None:
    """Unix seconds from unix seconds, an ISO date/datetime, or a relative age (``7d``, ``24h``, ``30m``)."""
    try:
        return export.parse_when(v, end)
    except ValueError:
        raise bad_request(
            f"'{name}': expected unix seconds, an ISO date or datetime, or an age like 7d or 24h.",
            name,
            "invalid_value",
        ) from None


class ApprovalBody(BaseModel):
    """Who approves capture for the team (recorded with the time)."""

    model_config = ConfigDict(extra="forbid")

    approved_by: str = Field(min_length=1, max_length=256)
    """The person (or ticket) approving data capture for the team."""
    note: str | None = Field(default=None, max_length=2000)
    """Why, or a reference to the agreement."""


def check_team(team: str) -> str:
    """``team`` when it is a valid team name, else a 400 (every admin path naming a team)."""
    if not re.match(_TEAM, team):
        raise bad_request("Invalid team name.", "team", "invalid_value")
    return team


def build_router() -> APIRouter:
    router = APIRouter(tags=["capture"])

    # -- approvals ----------------------------------------------------------------------------------------------
    @router.get("/teams/{team}/capture", summary="A team's data-capture approval")
    async def get_approval(team: str, st: State) -> dict[str, Any]:
        check_team(team)
        svc = st.capture.service
        await svc.refresh_approvals()
        a = svc.approvals.get(team)
        history = await _history(st, team)
        if a is None:
            return {
                "team": team,
                "approved": False,
                "actor": None,
                "at": None,
                "note": None,
                "reason": f"data capture not approved for team {team}",
                "history": history,
            }
        out = {**a.as_dict(), "history": history}
        if not a.approved:
            out["reason"] = f"data capture not approved for team {team} (revoked by {a.actor})"
        return out

    @router.post("/teams/{team}/capture", summary="Approve data capture for a team")
    async def approve(team: str, body: ApprovalBody, st: State) -> dict[str, Any]:
        a = await st.capture.service.set_approval(check_team(team), True, body.approved_by, body.note)
        return a.as_dict()

    @router.delete("/teams/{team}/capture", summary="Revoke a team's data-capture approval")
    async def revoke(
        team: str,
        st: State,
        by: Annotated[str, Query(min_length=1, max_length=256, description="Who revokes it")],
        note: Annotated[str | None, Query(max_length=2000)] = None,
        purge: Annotated[bool, Query(description="Also delete everything captured for the team")] = False,
    ) -> dict[str, Any]:
        svc = st.capture.service
        a = await svc.set_approval(check_team(team), False, by, note)
        out = a.as_dict()
        if purge:
            await svc.settle()
            out["deleted"] = await asyncio.to_thread(svc.store.purge_team, team)
        return out

    @router.get("/capture/teams", summary="Every team's data-capture approval")
    async def teams(st: State) -> dict[str, Any]:
        svc = st.capture.service
        await svc.refresh_approvals()
        return {"data": [a.as_dict() for _, a in sorted(svc.approvals.items())]}

    # -- status -------------------------------------------------------------------------------------------------------
    @router.get(
        "/capture/status",
        summary="Whether requests are captured, and if not why",
        description="The capture policy that applies to a request on ``route`` from ``team`` (or ``key``: its "
        "team is looked up), where it comes from (key, team or route), and whether the team approved capture.",
    )
    async def status(
        st: State, route: str | None = None, team: str | None = None, key: str | None = None
    ) -> dict[str, Any]:
        cfg = st.runtime.config
        if route is not None and all(r.name != route for r in cfg.routes):
            raise ApiError(
                404, f"No route named {route!r}.", "invalid_request_error", "route_not_found", "route"
            )
        if key is not None and all(k.name != key for k in cfg.keys):
            raise ApiError(404, f"No key named {key!r}.", "invalid_request_error", "key_not_found", "key")
        return st.capture.explain(route, team, key)

    @router.get("/capture/stats", summary="Capture queue and store statistics")
    async def stats(st: State) -> dict[str, Any]:
        svc = st.capture.service
        return {**svc.stats(), "stored": await asyncio.to_thread(svc.store.stats)}

    @router.post("/capture/flush", summary="Write everything queued for capture now")
    async def flush(st: State) -> dict[str, Any]:
        svc = st.capture.service
        done = await svc.settle(30.0)
        return {"flushed": done, "pending": svc.pending}

    @router.post("/capture/purge", summary="Delete expired traces and feedback now (retention)")
    async def purge(st: State) -> dict[str, Any]:
        return {"deleted": await st.capture.service.purge_expired()}

    # -- traces --------------------------------------------------------------------------------------------------------
    @router.get("/capture/traces", summary="Captured (redacted) traces, newest first")
    async def traces(
        st: State,
        team: str | None = None,
        task: str | None = None,
        route: str | None = None,
        key: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        svc = st.capture.service
        filters = {"team": team, "task": task, "route": route, "key": key}
        rows = await asyncio.to_thread(
            svc.store.traces, filters, parse_when(since), parse_when(until, True, "until"), limit, True
        )
        return {"data": [t.as_dict() for t in rows]}

    @router.get("/capture/traces/{request_id}", summary="One captured trace")
    async def trace(request_id: str, st: State) -> dict[str, Any]:
        t = await asyncio.to_thread(st.capture.service.store.get_trace, request_id)
        if t is None:
            raise ApiError(
                404,
                f"No captured trace for request {request_id!r}.",
                "invalid_request_error",
                "trace_not_found",
                "request_id",
            )
        return t.as_dict()

    # -- feedback ------------------------------------------------------------------------------------------------------
    @router.get("/feedback", summary="Feedback, joined with the captured trace and the ledger record")
    async def feedback(
        st: State,
        request_id: str | None = None,
        metric: str | None = None,
        kind: Annotated[str | None, Query(pattern="^(boolean|number|demonstration)$")] = None,
        team: str | None = None,
        task: str | None = None,
        route: str | None = None,
        key: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        include: Annotated[str, Query(description="Comma-separated: trace, ledger")] = "trace,ledger",
    ) -> dict[str, Any]:
        parts = {p.strip() for p in include.split(",") if p.strip()}
        if parts - {"trace", "ledger"}:
            raise bad_request("'include' takes trace and/or ledger.", "include", "invalid_value")
        filters = {
            "request_id": request_id,
            "metric": metric,
            "kind": kind,
            "team": team,
            "task": task,
            "route": route,
            "key": key,
        }
        data = await st.capture.feedback.query(
            filters,
            parse_when(since),
            parse_when(until, True, "until"),
            limit,
            "trace" in parts,
            "ledger" in parts,
        )
        return {"data": data}

    @router.get("/feedback/summary", summary="Feedback counts and means by route, task, metric")
    async def feedback_summary(
        st: State,
        group_by: str = "route,task,metric",
        since: str | None = None,
        until: str | None = None,
        team: str | None = None,
    ) -> dict[str, Any]:
        dims = [g.strip() for g in group_by.split(",") if g.strip()]
        try:
            rows = await asyncio.to_thread(
                st.capture.service.store.feedback_summary,
                dims,
                parse_when(since),
                parse_when(until, True, "until"),
                {"team": team},
            )
        except ValueError as exc:
            raise bad_request(str(exc), "group_by", "invalid_value") from None
        return {"group_by": dims, "data": rows}

    return router


async def _history(st: GatewayState, team: str) -> list[dict[str, Any]]:
    return await st.capture.service.approval_history(team)
