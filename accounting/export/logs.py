"""Request log lines: one structured line per finished request, written off the request path.

Successes are logged at ``info`` (sampled by ``success_sample_rate``); failures, disconnects and requests that
needed a fallback at ``warning`` with their reason. Lines hold identifiers, numbers and outcomes only: never a
prompt, an answer, a key's secret or a header. JSON by default (one object per line), ``text`` as
``key=value`` pairs for people reading a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from typing import Any

import orjson

from accounting.export.batcher import Batcher, Dropped
from accounting.export.config import RequestLogConfig
from accounting.money import usd
from accounting.record import RequestRecord

LOGGER = "pointsman.requests"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log_fields(rec: RequestRecord) -> dict[str, Any]:
    """What a request's log line holds, in a stable order."""
    u = rec.usage
    d: dict[str, Any] = {
        "ts": _iso(rec.ts),
        "event": "request",
        "request_id": rec.request_id,
        "key": rec.key or None,
        "team": rec.team,
        "task": rec.task,
        "route": rec.route or None,  # None: refused before routing
        "endpoint": rec.endpoint,
        "stream": rec.stream,
        "requested_model": rec.requested_model or None,
        "backend": rec.backend or None,
        "model": rec.upstream_model or None,
        "status": rec.status,
        "outcome": rec.outcome,
        "latency_ms": round(rec.latency_s * 1000, 3),
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cost_usd": usd(rec.cost_usd),
    }
    if rec.ttft_s is not None and rec.stream:
        d["ttft_ms"] = round(rec.ttft_s * 1000, 3)
    if u.estimated:
        d["tokens_estimated"] = True
    if rec.error_type:
        d["reason"] = rec.error_type
    if rec.failed_attempts:
        d["fallbacks"] = rec.fallbacks
        d["failed_attempts"] = [{"backend": b, "reason": e} for b, e in rec.failed_attempts]
    if rec.shadow:
        d["shadow"] = True
    if rec.trace is not None:
        d["trace_id"] = rec.trace.trace_id
    return d


def level_for(rec: RequestRecord) -> int:
    return logging.INFO if rec.outcome == "ok" and not rec.failed_attempts else logging.WARNING


def format_line(fields: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(fields, default=str).decode()
    parts = []
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, list):
            v = ",".join(f"{a['backend']}:{a['reason']}" for a in v)
        s = str(v).lower() if isinstance(v, bool) else str(v)
        parts.append(f"{k}={s}" if s and " " not in s and '"' not in s else f"{k}={orjson.dumps(s).decode()}")
    return " ".join(parts)


class RequestLog:
    def __init__(self, cfg: RequestLogConfig, dropped: Dropped) -> None:
        self.cfg = cfg
        self.logger = logging.getLogger(LOGGER)
        self.logger.setLevel(_LEVELS[cfg.level])
        if not self.logger.handlers:  # its own line format: the message is the whole line
            handler = _LinesHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(handler)
            self.logger.propagate = False
        self.batcher: Batcher[tuple[int, RequestRecord]] = Batcher("logs", cfg, self._write, dropped)
        self._rng = random.Random()

    def offer(self, rec: RequestRecord) -> None:
        level = level_for(rec)
        if not self.logger.isEnabledFor(level):
            return
        if level == logging.INFO and self.cfg.success_sample_rate < 1.0:
            if self._rng.random() >= self.cfg.success_sample_rate:
                return
        self.batcher.offer((level, rec))

    async def _write(self, batch: list[tuple[int, RequestRecord]]) -> None:
        lines = [(level, format_line(log_fields(rec), self.cfg.format)) for level, rec in batch]
        await asyncio.to_thread(self._emit, lines)

    def _emit(self, lines: list[tuple[int, str]]) -> None:
        handlers = self.logger.handlers
        if (
            len(handlers) == 1
            and type(handlers[0]) is _LinesHandler
            and not handlers[0].filters
            and not self.logger.filters
            and handlers[0].write_lines([line for _, line in lines])
        ):
            return
        for level, line in lines:
            self.logger.log(level, line)


class _LinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The request log's own handler (installed when nobody configured one): a batch of lines is written to its
    stream at once, one write and one flush, not a log record, a write and a flush per line."""

    def write_lines(self, lines: list[str]) -> bool:
        """False when the write failed (the lines are then logged one by one, with logging's error handling)."""
        text = "".join([line + self.terminator for line in lines])
        self.acquire()
        try:
            self.stream.write(text)
            self.flush()
        except Exception:
            return False
        finally:
            self.release()
        return True


_second: list[Any] = [None, ""]
"""The last second ``_iso`` wrote, and its text (lines come in batches, mostly from the same second)."""


def _iso(ts: float) -> str:
    whole = int(ts)
    ms = int((ts - whole) * 1000)
    if _second[0] != whole:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
        _second[0] = whole
    return f"{_second[1]}.{ms:03d}Z"
