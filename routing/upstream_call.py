"""The one way an upstream call is built, for client traffic, shadow calls and comparator calls alike.

The body sent upstream is the client's JSON text as the client wrote it, with these top-level members changed
(and nothing else; ``wire.json_object`` writes the edits):

- ``model``: the target's upstream id, when it differs from what the client sent;
- the route's ``defaults``: added for members the client did not send (in the route's order);
- ``stream_options``: ``include_usage: true`` asked for on streams that can carry usage (the gateway accounts
  every stream; the relay drops the usage chunk again when the client did not ask), added after the defaults when
  absent, the client's other options kept;
- ``metadata``: removed for backends that do not accept it (``accepts_metadata``).

Traced requests add the W3C ``traceparent`` of the call's span.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.models import ResolvedModel
from serving.backend import Backend, UpstreamCall
from wire.endpoints import USAGE_OPTION
from wire.json_object import JsonObject
from wire.traceparent import ChildSpan, TraceContext


@dataclass(slots=True)
class CallSpec:
    """What every upstream call of one request is built from, whichever target serves it."""

    endpoint: str
    body: JsonObject
    """The request as the client sent it: its text and its document (neither is ever modified)."""
    defaults: Mapping[str, Any]
    """The route's default parameters; the client's own values win."""
    stream: bool
    request_id: str
    trace: TraceContext | None = None
    """The request's trace, when traced: every call carries a ``traceparent`` for its own span."""

    @property
    def doc(self) -> dict[str, Any]:
        """The request document, parsed."""
        return self.body.doc


def build_call(
    spec: CallSpec, target: ResolvedModel, backend: Backend, timeout_s: float, span: ChildSpan | None = None
) -> UpstreamCall:
    """The call to ``target`` on ``backend`` with ``timeout_s`` left for it (``span``: the attempt's span in the
    request's trace; without one, the call is the trace's own span: a shadow or comparator call)."""
    doc = spec.body.doc
    set_: dict[str, Any] = {}
    if doc.get("model") != target.upstream_model:
        set_["model"] = target.upstream_model
    for k, v in spec.defaults.items():
        if k not in doc:
            set_[k] = v
    if spec.stream and spec.endpoint in USAGE_OPTION:
        so = doc["stream_options"] if "stream_options" in doc else set_.get("stream_options")
        if not (isinstance(so, dict) and so.get("include_usage") is True):
            set_["stream_options"] = (
                {**so, "include_usage": True} if isinstance(so, dict) else {"include_usage": True}
            )
    drop: tuple[str, ...] = ()
    if not backend.accepts_metadata:
        set_.pop("metadata", None)
        if "metadata" in doc:
            drop = ("metadata",)
    body = spec.body.with_members(set_, drop) if set_ or drop else spec.body.text
    call = UpstreamCall(spec.endpoint, body, spec.stream, timeout_s, spec.request_id)
    if spec.trace is not None:
        call.traceparent = spec.trace.header(span)
    return call
