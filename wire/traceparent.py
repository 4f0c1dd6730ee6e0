"""W3C Trace Context (``traceparent``): reading a client's header, minting ids, and the spans one request makes.

A request that is traced carries a ``TraceContext``: the trace it belongs to (the client's, when it sent a valid
``traceparent``, else a new one), its own span id, the client's span as parent, and whether it is sampled. Every
upstream call of the request (each attempt, a shadow call, a comparator call) opens a child span with
``child``; that span's id is what goes upstream in the call's ``traceparent`` header, so the upstream's own
spans (vLLM's) hang below the gateway's. Nothing here exports anything: the exporters read the finished
request's context off the request path.
"""

from __future__ import annotations

import random
import time

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


# Ids from the process's Mersenne Twister (reseeded in a forked child), as OpenTelemetry's own id generator does:
# ``os.urandom`` releases the GIL, and on a request path that lets a busy writer thread keep the event loop waiting.


def new_trace_id() -> str:
    return "%032x" % (random.getrandbits(128) or 1)


def new_span_id() -> str:
    return "%016x" % (random.getrandbits(64) or 1)


def parse_traceparent(value: str | bytes | None) -> tuple[str, str, bool] | None:
    """``(trace_id, parent_span_id, sampled)`` from a ``traceparent`` header, or None when absent or invalid
    (version ``ff``, all-zero ids, wrong lengths, upper-case or non-hex digits are invalid per the spec)."""
    if not value:
        return None
    s = value.decode("latin-1") if isinstance(value, bytes) else value
    s = s.strip()
    parts = s.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if len(version) != 2 or not _HEX.issuperset(version) or version == "ff":
        return None
    if version == "00" and len(parts) != 4:
        return None
    if len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
        return None
    if not (_HEX.issuperset(trace_id) and _HEX.issuperset(span_id) and _HEX.issuperset(flags)):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def format_traceparent(trace_id: str, span_id: str, sampled: bool) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


class ChildSpan:
    """One upstream call made for a traced request (an attempt, a shadow call, a comparator call)."""

    __slots__ = ("span_id", "kind", "backend", "model", "start_ns", "end_ns", "error", "status")

    span_id: str
    kind: str
    """``attempt``, ``shadow`` or ``comparator``."""
    backend: str
    model: str
    """The upstream model id the call asked for."""
    start_ns: int
    end_ns: int
    """0 while open; an attempt that served a stream ends with its request."""
    error: str | None
    status: int

    def __init__(
        self,
        span_id: str,
        kind: str,
        backend: str,
        model: str,
        start_ns: int,
        end_ns: int = 0,
        error: str | None = None,
        status: int = 0,
    ) -> None:
        self.span_id = span_id
        self.kind = kind
        self.backend = backend
        self.model = model
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.error = error
        self.status = status


class TraceContext:
    """A request's trace: its ids, whether it is sampled, and the upstream calls made for it."""

    __slots__ = ("trace_id", "span_id", "parent_span_id", "sampled", "start_ns", "children")

    trace_id: str
    span_id: str
    """This request's own span (what the exporters call the server span)."""
    parent_span_id: str | None
    """The client's span, from its ``traceparent``."""
    sampled: bool
    """Whether the request's spans are exported; propagated upstream in the flags either way."""
    start_ns: int
    children: list[ChildSpan]

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        sampled: bool,
        start_ns: int | None = None,
        children: list[ChildSpan] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.sampled = sampled
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.children = [] if children is None else children

    def child(self, kind: str, backend: str, model: str) -> ChildSpan:
        """Open a child span for an upstream call now; its ``traceparent`` is ``header(span)``."""
        span = ChildSpan(new_span_id(), kind, backend, model, time.time_ns())
        self.children.append(span)
        return span

    def derived(self) -> TraceContext:
        """A context for a call made on this request's behalf that is accounted as its own record (a shadow
        call, a comparator call): same trace, a new span whose parent is this request's."""
        return TraceContext(self.trace_id, new_span_id(), self.span_id, self.sampled)

    def header(self, span: ChildSpan | None = None) -> str:
        """The ``traceparent`` to send upstream for ``span`` (or, without one, for the request itself)."""
        return format_traceparent(self.trace_id, span.span_id if span else self.span_id, self.sampled)


def end_span(span: ChildSpan, error: str | None = None, status: int = 0) -> None:
    span.end_ns = time.time_ns()
    span.error = error
    span.status = status
