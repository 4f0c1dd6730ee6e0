"""Admin API for third-party processing consent (docs/consent.md): a team's (or key's) approval, recorded with who
and when, with its history; shared across replicas through the approvals store.

- ``GET/PUT /admin/teams/{team}/consent``: a team's decision, whether it is in force and why, and its history.
- ``GET/PUT /admin/keys/{key}/consent``: a key's own decision (wins over its team's).
- ``GET /admin/consent``: the default (``consent.third_party``), the third-party backends and every decision.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from accounting.approvals.store import KEY, TEAM, THIRD_PARTY, Approval
from gateway.admin.capture import check_team
from gateway.deps import get_state
from gateway.errors import no_such
from gateway.state import GatewayState
from routing.eligibility import approve_where

State = Annotated[GatewayState, Depends(get_state)]


class ConsentBody(BaseModel):
    """A decision on third-party processing of a team's (or key's) request data."""

    model_config = ConfigDict(extra="forbid")

    approved: bool
    """True: its request data may be processed by third-party backends; false: in-house backends only."""
    by: str = Field(min_length=1, max_length=256)
    """Who decides (a person or a ticket), recorded with the time."""
    note: str | None = Field(default=None, max_length=2000)
    """Why, or a reference to the agreement."""


def _decision(a: Approval | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"approved": a.approved, "actor": a.actor, "at": a.at, "note": a.note}


async def consent_state(st: GatewayState, scope: str, name: str) -> dict[str, Any]:
    """A team's or key's consent: its own recorded decision, what is in force for its requests and why, and the
    decision's history (the admin API's and the console's view)."""
    rt = st.runtime
    book = st.approvals
    await book.refresh()
    own = book.get(THIRD_PARTY, scope, name)
    if scope == KEY:
        team = next((k.team for k in rt.keys.by_hash.values() if k.name == name), None)
        approved, source = rt.consent.decision(name, team)
    else:
        team = name
        approved, source = rt.consent.decision("", name)  # no key is named "": the team's decision or default
    out: dict[str, Any] = {
        scope: name,
        "purpose": THIRD_PARTY,
        "approved": approved,
        "decided_by": source,
        "decision": _decision(own),
        "required": rt.consent.required,
        "third_party_backends": sorted(rt.consent.backends),
        "history": await book.history(THIRD_PARTY, scope, name),
    }
    if scope == KEY:
        out["team"] = team
    if approved:
        out["reason"] = {
            KEY: "the key's own approval",
            TEAM: f"approved for team {team}",
            "default": "consent.third_party is not_required and nothing was recorded",
            "unknown": "approvals could not be read yet; consent.third_party is not_required",
        }.get(source, "approved")
    else:
        who = f"team {name}" if scope == TEAM else f"key {name}"
        why = {
            "unknown": "approvals could not be read yet",
            "default": "consent.third_party is required and nothing was recorded",
        }.get(source, f"revoked by {own.actor}" if own is not None and source == scope else "not approved")
        out["reason"] = (
            f"third-party processing not approved for {who} ({why}): its requests are served only by in-house "
            f"backends; approve it with {approve_where(scope, name)}"
        )
    return out


def _check_key(st: GatewayState, key: str) -> str:
    if all(k.name != key for k in st.runtime.keys.by_hash.values()):
        raise no_such("client key", key)
    return key


def build_router() -> APIRouter:
    router = APIRouter(tags=["consent"])

    @router.get("/teams/{team}/consent", summary="A team's third-party processing consent, with history")
    async def get_team(team: str, st: State) -> dict[str, Any]:
        return await consent_state(st, TEAM, check_team(team))

    @router.put("/teams/{team}/consent", summary="Approve or revoke third-party processing for a team")
    async def put_team(team: str, body: ConsentBody, st: State) -> dict[str, Any]:
        await st.approvals.set(THIRD_PARTY, TEAM, check_team(team), body.approved, body.by, body.note)
        return await consent_state(st, TEAM, team)

    @router.get("/keys/{key}/consent", summary="A key's own third-party processing consent, with history")
    async def get_key(key: str, st: State) -> dict[str, Any]:
        return await consent_state(st, KEY, _check_key(st, key))

    @router.put(
        "/keys/{key}/consent",
        summary="Approve or revoke third-party processing for one key (wins over its team's decision)",
    )
    async def put_key(key: str, body: ConsentBody, st: State) -> dict[str, Any]:
        await st.approvals.set(THIRD_PARTY, KEY, _check_key(st, key), body.approved, body.by, body.note)
        return await consent_state(st, KEY, key)

    @router.get("/consent", summary="The consent default, the third-party backends and every decision")
    async def overview(st: State) -> dict[str, Any]:
        rt = st.runtime
        await st.approvals.refresh()
        current = st.approvals.current(THIRD_PARTY)
        teams = {k.team for k in rt.keys.by_hash.values() if k.team} | {n for s, n in current if s == TEAM}
        rows = []
        for team in sorted(teams):
            own = current.get((TEAM, team))
            approved = own.approved if own is not None else rt.consent.decision("", team)[0]
            rows.append({"team": team, "approved": approved, "decision": _decision(own)})
        keys = [{**current[s].as_dict()} for s in sorted(current) if s[0] == KEY]
        return {
            "purpose": THIRD_PARTY,
            "required": rt.consent.required,
            "third_party_backends": sorted(rt.consent.backends),
            "known": st.approvals.known,
            "teams": rows,
            "keys": keys,
        }

    return router
