"""Feedback: a team's reward signal for a request, joined to the captured trace and the ledger record.

A value is a boolean (thumbs up/down), a number (a score), or a demonstration: the corrected answer, as a
string or as chat messages. Feedback is accepted only from a key of the team that made the request (or the same
key when the request had no team), and only for a request the gateway knows (captured, or in the ledger; the
ledger is written within a second, so a short wait covers feedback sent right after the answer). Demonstrations
are content: they are redacted like traces and accepted only from teams approved for capture.

Each accepted feedback increments ``pointsman_feedback_total`` and adds its value to
``pointsman_feedback_value_sum`` (booleans count 1/0; demonstrations add nothing), by route, task and metric,
so Grafana can plot the mean per metric.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

from accounting.capture.config import METRIC_NAME
from accounting.capture.pipeline import DAY, CaptureService
from accounting.capture.redact import Redactor
from accounting.capture.store import Feedback
from accounting.capture.trace import Trace
from accounting.metrics import OTHER, Metrics

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MAX_DEMONSTRATION_BYTES = 256 * 1024
MAX_METRIC_LABELS = 32
LEDGER_LOOKBACK_S = 7 * DAY


class FeedbackError(Exception):
    """A feedback request the gateway refuses; ``api_error`` gives the OpenAI-shaped error."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def api_error(self) -> tuple[int, str, str, str, dict[str, str]]:
        kind = {403: "permission_error", 404: "invalid_request_error"}.get(
            self.status, "invalid_request_error"
        )
        return self.status, self.message, kind, self.code, {}


class FeedbackValue:
    """A feedback ``value`` as parsed: its kind, and the number or the demonstration's messages."""

    __slots__ = ("kind", "number", "demonstration")

    kind: Final[str]
    """``boolean``, ``number`` or ``demonstration``."""
    number: Final[float | None]
    demonstration: Final[list[dict[str, Any]] | None]

    def __init__(
        self, kind: str, number: float | None = None, demonstration: list[dict[str, Any]] | None = None
    ) -> None:
        self.kind = kind
        self.number = number
        self.demonstration = demonstration


def parse_value(v: Any) -> FeedbackValue:
    """A feedback ``value`` as sent by a client (see the module docstring); raises ``FeedbackError``."""
    if isinstance(v, bool):
        return FeedbackValue("boolean", 1.0 if v else 0.0)
    if isinstance(v, int | float):
        f = float(v)
        if not math.isfinite(f):
            raise FeedbackError(400, "'value' must be a finite number.", "invalid_value", "value")
        return FeedbackValue("number", f)
    if isinstance(v, str):
        if not v.strip():
            raise FeedbackError(400, "A demonstration must not be empty.", "invalid_value", "value")
        return FeedbackValue("demonstration", demonstration=[{"role": "assistant", "content": v}])
    if isinstance(v, dict):
        v = v.get("messages") if "messages" in v else [v]
    if isinstance(v, list):
        return FeedbackValue("demonstration", demonstration=_messages(v))
    raise FeedbackError(
        400,
        "'value' must be a boolean, a number, or a corrected answer (a string or chat messages).",
        "invalid_value",
        "value",
    )


def _messages(v: list[Any]) -> list[dict[str, Any]]:
    if not v:
        raise FeedbackError(400, "A demonstration needs at least one message.", "invalid_value", "value")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(v):
        if not isinstance(m, dict) or m.get("role") not in CHAT_ROLES:
            raise FeedbackError(
                400,
                f"value[{i}]: each message needs a role among {sorted(CHAT_ROLES)}.",
                "invalid_value",
                f"value[{i}].role",
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise FeedbackError(
                400,
                f"value[{i}].content must be a string or content parts.",
                "invalid_value",
                f"value[{i}].content",
            )
        if content is None and not m.get("tool_calls"):
            raise FeedbackError(
                400, f"value[{i}] has neither content nor tool_calls.", "invalid_value", f"value[{i}]"
            )
        out.append({k: m[k] for k in ("role", "content", "name", "tool_calls", "tool_call_id") if k in m})
    if out[-1]["role"] != "assistant":
        raise FeedbackError(
            400, "A demonstration must end with an assistant message.", "invalid_value", "value"
        )
    if len(orjson.dumps(out)) > MAX_DEMONSTRATION_BYTES:
        raise FeedbackError(
            400, f"A demonstration may be at most {MAX_DEMONSTRATION_BYTES} bytes.", "invalid_value", "value"
        )
    return out


def ledger_record(path: str, request_id: str, since: float) -> dict[str, Any] | None:
    """The ledger row of a (non-shadow) request, read-only; None when not (yet) there."""
    if not Path(path).exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        cur = conn.execute(
            "SELECT * FROM requests WHERE ts >= ? AND request_id = ? AND shadow = 0 ORDER BY ts DESC LIMIT 1",
            (since, request_id),
        )
        row = cur.fetchone()
        if row is None:
            return None
        names = [d[0] for d in cur.description]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    rec = dict(zip(names, row, strict=True))
    rec.pop("id", None)
    rec.pop("cost_nusd", None)
    for k in ("stream", "estimated", "priced", "self_hosted", "shadow"):
        if k in rec:
            rec[k] = bool(rec[k])
    return rec


class FeedbackDesk:
    """Accepts, joins and answers queries about feedback (one per process, next to the ``CaptureService``)."""

    def __init__(
        self, capture: CaptureService, ledger_path: Callable[[], str | None], metrics: Metrics | None = None
    ) -> None:
        self.capture = capture
        self.ledger_path = ledger_path
        self.metrics = metrics
        self._metric_labels: set[str] = set()

    def redactor(self) -> Redactor:
        """All built-ins plus every configured pattern: the strictest set, for free-form feedback text."""
        return self.capture.strict_redactor()

    async def lookup(
        self, request_id: str, wait_s: float = 0.0
    ) -> tuple[Trace | None, dict[str, Any] | None]:
        """The captured trace and the ledger record of a request, waiting up to ``wait_s`` for the ledger record
        (written within a second of the request's end) or, without a ledger, for the trace."""
        deadline = time.monotonic() + wait_s
        trace: Trace | None = None
        while True:
            if trace is None:
                trace = await asyncio.to_thread(self.capture.store.get_trace, request_id)
            path = self.ledger_path()
            since = (trace.ts - 1.0) if trace is not None else time.time() - LEDGER_LOOKBACK_S
            ledger = await asyncio.to_thread(ledger_record, path, request_id, since) if path else None
            if ledger is not None or (path is None and trace is not None) or time.monotonic() >= deadline:
                return trace, ledger
            await asyncio.sleep(0.05)

    async def submit(
        self,
        *,
        key: str,
        team: str | None,
        request_id: str,
        metric: str,
        value: Any,
        comment: str | None = None,
    ) -> dict[str, Any]:
        settings = self.capture.settings
        if not METRIC_NAME.match(metric):
            raise FeedbackError(
                400,
                "'metric' must be 1-64 characters: letters, digits, '_', '.', ':' or '-', "
                "starting with a letter.",
                "invalid_value",
                "metric",
            )
        if settings.feedback_metrics is not None and metric not in settings.feedback_metrics:
            raise FeedbackError(
                400,
                f"Unknown feedback metric {metric!r}; this gateway accepts "
                f"{', '.join(settings.feedback_metrics)}.",
                "invalid_value",
                "metric",
            )
        parsed = parse_value(value)
        if parsed.kind == "demonstration" and not self.capture.is_approved(team):
            who = f"team {team}" if team else f"key {key} (it has no team)"
            raise FeedbackError(
                403,
                f"data capture not approved for {who}: demonstrations are captured data.",
                "capture_not_approved",
                "value",
            )
        trace, ledger = await self.lookup(request_id, settings.feedback_wait_s)
        o_key = trace.key if trace is not None else (ledger or {}).get("key")
        o_team = trace.team if trace is not None else (ledger or {}).get("team")
        if (trace is None and ledger is None) or not _same_owner(key, team, o_key, o_team):
            raise FeedbackError(
                404,
                f"No request {request_id!r} made with this key's team is known to the gateway "
                "(feedback needs a captured request or its ledger record).",
                "request_not_found",
                "request_id",
            )
        route = trace.route if trace is not None else (ledger or {}).get("route")
        task = trace.task if trace is not None else (ledger or {}).get("task")
        now = time.time()
        expires = trace.expires_at if trace is not None else now + settings.default_retain_days * DAY
        counts: dict[str, int] = {}
        red = self.redactor()
        demo = red.redact_json(parsed.demonstration, counts) if parsed.demonstration is not None else None
        note = red.redact(comment[:4000], counts) if comment else None
        fb = Feedback(
            id=0,
            request_id=request_id,
            ts=now,
            expires_at=expires,
            key=key,
            team=team,
            task=task,
            route=route,
            metric=metric,
            kind=parsed.kind,
            value=parsed.number,
            demonstration=demo,
            comment=note,
            redactions=counts,
        )
        fid = await asyncio.to_thread(self.capture.store.add_feedback, fb)
        self._observe(route, task, metric, parsed.number)
        return {
            "object": "feedback",
            "id": fid,
            "request_id": request_id,
            "metric": metric,
            "kind": parsed.kind,
            "created_at": now,
            "joined": {"trace": trace is not None, "ledger": ledger is not None},
        }

    def _observe(self, route: str | None, task: str | None, metric: str, number: float | None) -> None:
        m = self.metrics
        if m is None:
            return
        if metric not in self._metric_labels and len(self._metric_labels) < MAX_METRIC_LABELS:
            self._metric_labels.add(metric)
        label = metric if metric in self._metric_labels else OTHER
        labels = (m.labels.route(route), m.labels.task(task), label)
        m.feedback.labels(*labels).inc()
        if number is not None:
            m.feedback_value_sum.labels(*labels).inc(number)

    async def query(
        self,
        filters: dict[str, Any],
        since: float | None,
        until: float | None,
        limit: int,
        include_trace: bool = True,
        include_ledger: bool = True,
    ) -> list[dict[str, Any]]:
        """Feedback, newest first, each joined with its trace and ledger record."""
        store = self.capture.store
        rows = await asyncio.to_thread(store.feedback, filters, since, until, limit)
        out: list[dict[str, Any]] = []
        traces: dict[str, Trace | None] = {}
        ledgers: dict[str, dict[str, Any] | None] = {}
        path = self.ledger_path()
        for fb in rows:
            rid = fb.request_id
            if rid not in traces:
                traces[rid] = await asyncio.to_thread(store.get_trace, rid) if include_trace else None
                ledgers[rid] = (
                    await asyncio.to_thread(ledger_record, path, rid, fb.ts - LEDGER_LOOKBACK_S)
                    if include_ledger and path
                    else None
                )
            t = traces[rid]
            out.append(
                {
                    "feedback": fb.as_dict(),
                    "trace": t.as_dict() if t is not None else None,
                    "ledger": ledgers[rid],
                }
            )
        return out


def _same_owner(key: str, team: str | None, o_key: Any, o_team: Any) -> bool:
    if team is not None:
        return bool(o_team == team)
    return bool(o_key == key)
