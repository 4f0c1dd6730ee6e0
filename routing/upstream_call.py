"""The one way an upstream call is built, for client traffic, shadow calls and comparator calls alike.

The body sent upstream is the client's JSON text as the client wrote it, with these top-level members changed
(and nothing else; ``wire.json_object`` writes the edits):

- ``model``: the target's upstream id, when it differs from what the client sent;
- the route's ``defaults``: added for members the client did not send (in the route's order), in the form the
  endpoint takes (``wire.route_defaults``: none for embeddings and token counting, the output limit under the
  endpoint's own name and only when the client named none);
- ``stream_options``: ``include_usage: true`` asked for on streams that can carry usage (the gateway accounts
  every stream; the relay drops the usage chunk again when the client did not ask), added after the defaults when
  absent, the client's other options kept;
- ``metadata``: removed for backends that do not accept it (``accepts_metadata``).

Traced requests add the W3C ``traceparent`` of the call's span.

Anthropic's Messages API (``messages``, ``messages/count_tokens``): to a backend that ``speaks_messages`` the
body passes the same way (``model`` and ``defaults`` as above, ``metadata`` kept to Anthropic's own
``user_id`` — the gateway's tags are read from it, never sent) with the client's ``anthropic-version`` and
``anthropic-beta`` headers. To any other backend a Messages request is translated to Chat Completions
(``wire.anthropic.to_chat``: what has no equivalent raises ``Untranslatable`` naming the field), then given the
model, defaults, ``include_usage`` and ``metadata`` rule above; the call carries a ``Translation`` so its answer
is said back in the Messages API (``serving.translation``). Counting tokens has no Chat Completions form: the
gateway counts them itself for such backends (``gateway.inference.handler``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from routing.models import ResolvedModel
from serving.backend import Backend, Translation, UpstreamCall
from wire.anthropic.to_chat import to_chat_request
from wire.anthropic.untranslatable import Untranslatable
from wire.endpoints import ANTHROPIC, CHAT, COUNT_TOKENS, USAGE_OPTION
from wire.json_object import JsonObject
from wire.route_defaults import added
from wire.traceparent import ChildSpan, TraceContext


class CallSpec:
    """What every upstream call of one request is built from, whichever target serves it."""

    __slots__ = ("endpoint", "body", "defaults", "stream", "request_id", "trace", "headers")

    endpoint: str
    body: JsonObject
    """The request as the client sent it: its text and its document (neither is ever modified)."""
    defaults: Mapping[str, Any]
    """The route's default parameters in the form ``endpoint`` takes (``Decision.defaults_for``); the client's own
    values win."""
    stream: bool
    request_id: str
    trace: TraceContext | None
    """The request's trace, when traced: every call carries a ``traceparent`` for its own span."""
    headers: Mapping[str, str] | None
    """Client headers forwarded to backends that speak the client's protocol (``anthropic-version``,
    ``anthropic-beta``)."""

    def __init__(
        self,
        endpoint: str,
        body: JsonObject,
        defaults: Mapping[str, Any],
        stream: bool,
        request_id: str,
        trace: TraceContext | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.body = body
        self.defaults = defaults
        self.stream = stream
        self.request_id = request_id
        self.trace = trace
        self.headers = headers

    @property
    def doc(self) -> dict[str, Any]:
        """The request document, parsed."""
        return self.body.doc


def build_call(
    spec: CallSpec, target: ResolvedModel, backend: Backend, timeout_s: float, span: ChildSpan | None = None
) -> UpstreamCall:
    """The call to ``target`` on ``backend`` with ``timeout_s`` left for it (``span``: the attempt's span in the
    request's trace; without one, the call is the trace's own span: a shadow or comparator call)."""
    if spec.endpoint in ANTHROPIC:
        return _messages_call(spec, target, backend, timeout_s, span)
    doc = spec.body.doc
    set_ = _model_and_defaults(spec, target, doc)
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


def _model_and_defaults(
    spec: CallSpec, target: ResolvedModel, doc: dict[str, Any], endpoint: str | None = None
) -> dict[str, Any]:
    """The members every call sets in ``doc`` (a request of ``endpoint``, the spec's unless given): the target's
    model id where it differs, the route's defaults ``doc`` lacks."""
    endpoint = endpoint or spec.endpoint
    set_ = added(endpoint, doc, spec.defaults) if spec.defaults else {}
    if doc.get("model") != target.upstream_model:
        set_["model"] = target.upstream_model  # (a member the body has: replaced where it stands)
    return set_


def _messages_call(
    spec: CallSpec, target: ResolvedModel, backend: Backend, timeout_s: float, span: ChildSpan | None
) -> UpstreamCall:
    doc = spec.body.doc
    if backend.speaks_messages:
        set_ = _model_and_defaults(spec, target, doc)
        drop: tuple[str, ...] = ()
        md = doc.get("metadata")
        if isinstance(md, dict) and set(md) - {"user_id"}:
            if "user_id" in md:
                set_["metadata"] = {"user_id": md["user_id"]}
            else:
                drop = ("metadata",)
        body = spec.body.with_members(set_, drop) if set_ or drop else spec.body.text
        call = UpstreamCall(
            spec.endpoint, body, spec.stream, timeout_s, spec.request_id, headers=spec.headers
        )
    else:
        if spec.endpoint == COUNT_TOKENS:
            raise Untranslatable(
                "model", f"counting tokens needs a backend that speaks the Messages API, not `{backend.name}`"
            )
        chat = to_chat_request(doc)
        chat.update(_model_and_defaults(spec, target, chat, CHAT))
        if spec.stream:
            so = chat.get("stream_options")
            chat["stream_options"] = (
                {**so, "include_usage": True} if isinstance(so, dict) else {"include_usage": True}
            )
        if not backend.accepts_metadata:
            chat.pop("metadata", None)
        stops = chat.get("stop")
        call = UpstreamCall(
            CHAT,
            orjson.dumps(chat),
            spec.stream,
            timeout_s,
            spec.request_id,
            translation=Translation(spec.endpoint, tuple(stops) if isinstance(stops, list) else ()),
        )
    if spec.trace is not None:
        call.traceparent = spec.trace.header(span)
    return call
