"""Judged shadow pairs for dataset export, read from the shadow-testing store.

A pair counts as judged when one of its route's ``llm_judge`` comparators scored it (1 = the candidate won,
0 = the primary won, 0.5 = tie) and it stored both answers (its route's ``shadow.capture`` is on and the team
approved capture). The pair store is the shadow hub's (``state.shadow.hub.store``); without one there are no
pairs, and exports simply contain none.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from accounting.capture.export import JudgedPair, in_window
from gateway.config import GatewayConfig
from routing.shadow.record import PairRecord
from routing.shadow.store import PairStore

T = TypeVar("T")


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


PAGE = 5_000
"""The most pairs one read of the store returns for an export (time slices of the window are halved until each
holds at most this many pairs, counted without reading them)."""
LOOKUPS = 100
"""Pairs looked up by id at once (``judged_pairs_of``)."""


def judged(p: PairRecord, names: set[str]) -> JudgedPair | None:
    """``p`` as a judged pair, when one of its route's judges (``names``) scored it and it stored both answers."""
    cap = p.capture
    if p.outcome != "paired" or not isinstance(cap, dict):
        return None
    score = next((p.scores[n] for n in sorted(names) if n in p.scores), None)
    if score is None:
        return None
    return JudgedPair(
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


class StorePairs:
    """The judged pairs of the shadow store, for an export running in a worker thread: each read is a coroutine
    run on the gateway's event loop (``loop``), a page at a time, so an export holds one page of pairs, not its
    window's (a busy route's week of pairs, with their captured texts, is gigabytes)."""

    def __init__(
        self,
        store: PairStore,
        judges: dict[str, set[str]],
        loop: asyncio.AbstractEventLoop,
        page: int = PAGE,
        timeout_s: float = 300.0,
    ) -> None:
        self.store = store
        self.judges = judges
        self.loop = loop
        self.page = page
        self.timeout_s = timeout_s

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout_s)

    def judged_pairs(
        self, since: float | None, until: float | None, task: str | None, route: str | None
    ) -> Iterator[JudgedPair]:
        for r in [route] if route else sorted(self.judges):
            names = self.judges.get(r)
            if not names:
                continue
            lo = since if since is not None else 0.0
            hi = until if until is not None else time.time() + 86400
            for a, b in self._run(self._slices(r, lo, hi)):
                for p in self._run(self.store.pairs(r, a, b, outcome="paired")):
                    jp = judged(p, names)
                    if jp is not None and in_window(jp, since, until, task, None):
                        yield jp

    async def _slices(self, route: str, lo: float, hi: float) -> list[tuple[float, float]]:
        """``[lo, hi]`` cut into consecutive inclusive slices of at most ``page`` pairs each (a slice narrower
        than a millisecond is kept whole), oldest first; empty slices left out."""
        out: list[tuple[float, float]] = []
        todo = [(lo, hi)]
        while todo:
            a, b = todo.pop()
            n = await self.store.count_pairs(route, a, b)
            if n == 0:
                continue
            if n <= self.page or b - a < 0.001:
                out.append((a, b))
                continue
            m = (a + b) / 2
            todo += [(m, b), (a, math.nextafter(m, -math.inf))]  # (the earlier half next)
        return out

    def judged_pairs_of(
        self,
        request_ids: Sequence[str],
        since: float | None,
        until: float | None,
        task: str | None,
        route: str | None,
    ) -> dict[str, JudgedPair]:
        out: dict[str, JudgedPair] = {}
        for i in range(0, len(request_ids), LOOKUPS):
            for p in self._run(self._lookup(request_ids[i : i + LOOKUPS])):
                names = self.judges.get(p.route) if p is not None else None
                jp = judged(p, names) if p is not None and names else None
                if jp is not None and in_window(jp, since, until, task, route):
                    out[jp.request_id] = jp
        return out

    async def _lookup(self, ids: Sequence[str]) -> list[PairRecord | None]:
        return list(await asyncio.gather(*(self.store.pair(i) for i in ids)))


def store_pairs(state: Any, loop: asyncio.AbstractEventLoop) -> StorePairs | None:
    """The judged pairs of this gateway's shadow store; None when it has none (exports then hold no pairs)."""
    store = getattr(getattr(getattr(state, "shadow", None), "hub", None), "store", None)
    if store is None:
        return None
    return StorePairs(store, judge_names(state.runtime.config), loop)
