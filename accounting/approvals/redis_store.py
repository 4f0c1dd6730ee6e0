"""Approvals in Redis, shared by every replica: one hash per purpose and scope (subject -> its current decision as
JSON) and one list per subject (its history). Capture's team approvals keep the keys they had before approvals
had purposes (``pointsman:capture:approvals``, ``pointsman:capture:approval_history:<team>``), so approvals
recorded by earlier versions stay in force."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from accounting.approvals.store import CAPTURE, SCOPES, TEAM, Approval, Subject

_LEGACY = {(CAPTURE, TEAM): ("pointsman:capture:approvals", "pointsman:capture:approval_history:")}


def keys_for(purpose: str, scope: str) -> tuple[str, str]:
    """(hash of current decisions, prefix of the per-subject history lists)."""
    legacy = _LEGACY.get((purpose, scope))
    if legacy is not None:
        return legacy
    base = f"pointsman:approvals:{purpose}:{scope}"
    return base, base + ":history:"


class RedisApprovals:
    """``ApprovalStore`` over Redis (sync client; called through ``asyncio.to_thread``)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)

    def approvals(self, purpose: str) -> dict[Subject, Approval]:
        pipe = self.client.pipeline(transaction=False)
        for scope in SCOPES:
            pipe.hgetall(keys_for(purpose, scope)[0])
        out: dict[Subject, Approval] = {}
        for scope, found in zip(SCOPES, pipe.execute(), strict=True):
            for raw_name, raw in found.items():
                d = orjson.loads(raw)
                name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
                out[(scope, name)] = Approval(
                    purpose, scope, name, bool(d["approved"]), d["actor"], float(d["at"]), d.get("note")
                )
        return out

    def set_approval(
        self, purpose: str, scope: str, name: str, approved: bool, actor: str, note: str | None, at: float
    ) -> Approval:
        a = Approval(purpose, scope, name, approved, actor, at, note)
        current, history = keys_for(purpose, scope)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(current, name, orjson.dumps(a.as_dict()))
        pipe.rpush(history + name, orjson.dumps(a.event()))
        pipe.execute()
        return a

    def approval_history(self, purpose: str, scope: str, name: str) -> list[dict[str, Any]]:
        history = keys_for(purpose, scope)[1]
        return [orjson.loads(x) for x in self.client.lrange(history + name, 0, -1)]

    def close(self) -> None:
        self.client.close()
