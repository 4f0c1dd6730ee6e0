"""The one way an upstream call is built, for client traffic, shadow calls and comparator calls alike.

The body sent upstream is the client's document over the route's defaults, with the model rewritten to the
target's upstream id, ``stream_options.include_usage`` asked for on streams that can carry usage (the gateway
accounts every stream; the relay drops the usage chunk again when the client did not ask), and ``metadata``
left out for backends that do not accept it; traced requests add the W3C ``traceparent`` of the call's span.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.models import ResolvedModel
from serving.backend import Backend, UpstreamCall
from wire.endpoints import USAGE_OPTION
from wire.traceparent import ChildSpan, TraceContext


@dataclass(slots=True)
class CallSpec:
    """What every upstream call of one request is built from, whichever target serves it."""

    endpoint: str
    doc: dict[str, Any]
    """The request body as the client sent it (never modified)."""
    defaults: Mapping[str, Any]
    """The route's default parameters; the client's own values win."""
    stream: bool
    request_id: str
    trace: TraceContext | None = None
    """The request's trace, when traced: every call carries a ``traceparent`` for its own span."""


def build_call(
    spec: CallSpec, target: ResolvedModel, backend: Backend, timeout_s: float, span: ChildSpan | None = None
) -> UpstreamCall:
    """The call to ``target`` on ``backend`` with ``timeout_s`` left for it (``span``: the attempt's span in the
    request's trace; without one, the call is the trace's own span: a shadow or comparator call)."""
    defaults = spec.defaults
    body = {**defaults, **spec.doc} if defaults else dict(spec.doc)
    body["model"] = target.upstream_model
    if spec.stream and spec.endpoint in USAGE_OPTION:
        so = body.get("stream_options")
        body["stream_options"] = (
            {**so, "include_usage": True} if isinstance(so, dict) else {"include_usage": True}
        )
    if not backend.accepts_metadata and "metadata" in body:
        del body["metadata"]
    call = UpstreamCall(spec.endpoint, body, spec.stream, timeout_s, spec.request_id)
    if spec.trace is not None:
        call.traceparent = spec.trace.header(span)
    return call
