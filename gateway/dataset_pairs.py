"""Judged shadow pairs for dataset export, read from the shadow-testing store.

A pair counts as judged when one of its route's ``llm_judge`` comparators scored it (1 = the candidate won,
0 = the primary won, 0.5 = tie) and it stored both answers (its route's ``shadow.capture`` is on and the team
approved capture). The pair store is the shadow hub's (``state.shadow.hub.store``); without one there are no
pairs, and exports simply contain none.
"""

from __future__ import annotations

from typing import Any

from accounting.capture.export import JudgedPair
from gateway.config import GatewayConfig


def judge_names(cfg: GatewayConfig) -> dict[str, set[str]]:
    """Route name -> names of its ``llm_judge`` comparators."""
    out: dict[str, set[str]] = {}
    for r in cfg.routes:
        shadow = getattr(r, "shadow", None)
        names = {
            c.key for c in getattr(shadow, "compare", None) or () if getattr(c, "type", None) == "llm_judge"
        }
        if names:
            out[r.name] = names
    return out


def answer(output: Any) -> dict[str, Any] | None:
    """A shadow ``Output`` dict (``text``, ``tool_calls``) as one assistant message."""
    if not isinstance(output, dict) or output.get("error"):
        return None
    text = output.get("text") or None
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": tc.get("name"), "arguments": tc.get("arguments") or "{}"},
        }
        for i, tc in enumerate(output.get("tool_calls") or ())
        if isinstance(tc, dict)
    ]
    if not text and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        msg["tool_calls"] = calls
    return msg


def winner_of(score: float) -> str:
    return "candidate" if score >= 1.0 else "primary" if score <= 0.0 else "tie"


async def judged_pairs(
    state: Any, since: float | None, until: float | None, task: str | None, route: str | None
) -> list[JudgedPair] | None:
    """Judged pairs with stored answers; None when this gateway has no shadow store."""
    store = getattr(getattr(getattr(state, "shadow", None), "hub", None), "store", None)
    if store is None:
        return None
    judges = judge_names(state.runtime.config)
    out: list[JudgedPair] = []
    for r in [route] if route else sorted(judges):
        names = judges.get(r)
        if not names:
            continue
        for p in await store.pairs(r, since, until, outcome="paired"):
            if task is not None and p.task != task:
                continue
            cap = p.capture
            if p.outcome != "paired" or not isinstance(cap, dict):
                continue
            score = next((p.scores[n] for n in sorted(names) if n in p.scores), None)
            if score is None:
                continue
            out.append(
                JudgedPair(
                    request_id=p.id,
                    ts=p.ts,
                    winner=winner_of(score),
                    primary_answer=answer(cap.get("primary")),
                    candidate_answer=answer(cap.get("candidate")),
                    request=cap.get("request") if isinstance(cap.get("request"), dict) else None,
                    endpoint=p.endpoint,
                    route=p.route,
                    task=p.task,
                    team=p.team,
                    key=p.key,
                    primary_model=p.primary.model,
                    candidate_model=p.candidate.model,
                )
            )
    return out
