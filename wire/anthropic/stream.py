"""An OpenAI Chat Completions stream said as a Messages API stream, one upstream chunk at a time.

The events come out in the order Anthropic's clients require: ``message_start`` (and a ``ping``) before
anything else; each content block opened (``content_block_start``), given its deltas and closed
(``content_block_stop``) before the next one opens, indexes counting up from 0; then ``message_delta`` with the
stop reason and the usage (cumulative totals, input included: a chat stream reports usage only at its end) and
``message_stop``. Text deltas make text blocks; each tool call (by its chat ``index``) a ``tool_use`` block whose
arguments stream as ``input_json_delta``. The message ends at the chat stream's ``data: [DONE]``: a stream cut
off before it gets no ``message_stop`` (the relay reports it truncated). An error chunk becomes Anthropic's
``event: error``, and nothing follows it. A tool call's delta for a block already closed (arguments interleaved
between parallel calls, which OpenAI and vLLM never send) cannot be said in order: it ends the stream with an
error event rather than an invalid sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from wire.anthropic.errors import error_event
from wire.anthropic.from_chat import message_id, stop_reason, usage
from wire.errors import event_error
from wire.sse import DONE, SSEReader, StreamBounds, parse_event, split_events

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The largest upstream chat event the translator holds before its end arrives."""


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class ChatToMessages:
    """Parsed chat chunks in, Messages API event bytes out."""

    __slots__ = (
        "stop_sequences",
        "started",
        "ended",
        "_block",
        "_kind",
        "_tools",
        "_closed_tools",
        "_next",
        "_reason",
        "_sequence",
        "_usage",
    )

    def __init__(self, stop_sequences: Sequence[str] = ()) -> None:
        self.stop_sequences = tuple(stop_sequences)
        self.started = False
        self.ended = False
        """``message_stop`` or ``error`` was sent: nothing more is."""
        self._block: int | None = None
        """Index of the open content block."""
        self._kind = ""
        self._tools: dict[int, int] = {}
        """Chat tool-call index -> content block index."""
        self._closed_tools: set[int] = set()
        self._next = 0
        self._reason: str | None = None
        self._sequence: str | None = None
        self._usage: dict[str, int] | None = None

    def chunk(self, doc: Any) -> bytes:
        if self.ended or not isinstance(doc, dict):
            return b""
        err = event_error(doc)
        if err is not None:
            return self.error(err, "api_error")
        out: list[bytes] = []
        if not self.started:
            out.append(self._start(doc))
        if isinstance(doc.get("usage"), dict):
            self._usage = usage(doc["usage"])
        choices = doc.get("choices")
        c = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if c is not None:
            delta = c.get("delta")
            if isinstance(delta, dict):
                text = delta.get("content")
                if isinstance(text, str) and text:
                    out.append(self._text(text))
                refusal = delta.get("refusal")
                if isinstance(refusal, str) and refusal:
                    out.append(self._text(refusal))
                    self._reason = "refusal"
                for tc in delta.get("tool_calls") or ():
                    if isinstance(tc, dict):
                        piece = self._tool(tc)
                        if self.ended:
                            return b"".join(out) + piece
                        out.append(piece)
            reason, seq = stop_reason(c, self.stop_sequences)
            if reason is not None and self._reason != "refusal":
                self._reason, self._sequence = reason, seq
        return b"".join(out)

    def done(self) -> bytes:
        """The chat stream's ``[DONE]``: close what is open, say why it stopped and what it used."""
        if self.ended:
            return b""
        out = [] if self.started else [self._start({})]
        out.append(self._close())
        u = self._usage or {"input_tokens": 0, "output_tokens": 0}
        out.append(
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": self._reason or "end_turn", "stop_sequence": self._sequence},
                    "usage": u,
                },
            )
        )
        out.append(event("message_stop", {}))
        self.ended = True
        return b"".join(out)

    def error(self, message: str, type_: str) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        return error_event(message, type_)

    def _start(self, doc: dict[str, Any]) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(doc.get("id")),
            "type": "message",
            "role": "assistant",
            "model": str(doc.get("model") or ""),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"message": message}) + event("ping", {})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        closing = self._close()
        self._block = self._next
        self._next += 1
        self._kind = kind
        return closing + event("content_block_start", {"index": self._block, "content_block": block})

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        at, self._block = self._block, None
        if self._kind.startswith("tool:"):
            self._closed_tools.add(int(self._kind[5:]))
        self._kind = ""
        return event("content_block_stop", {"index": at})

    def _text(self, text: str) -> bytes:
        head = b"" if self._kind == "text" else self._open("text", {"type": "text", "text": ""})
        assert self._block is not None
        return head + event(
            "content_block_delta", {"index": self._block, "delta": {"type": "text_delta", "text": text}}
        )

    def _tool(self, tc: dict[str, Any]) -> bytes:
        idx = tc.get("index")
        idx = idx if isinstance(idx, int) and not isinstance(idx, bool) else len(self._tools)
        fn = tc.get("function")
        fn = fn if isinstance(fn, dict) else {}
        kind = f"tool:{idx}"
        head = b""
        if idx in self._closed_tools:
            return self.error(
                "The upstream interleaved the arguments of parallel tool calls, which the Messages API cannot "
                "stream in order.",
                "api_error",
            )
        if self._kind != kind:
            block = {
                "type": "tool_use",
                "id": str(tc.get("id") or ""),
                "name": str(fn.get("name") or ""),
                "input": {},
            }
            head = self._open(kind, block)
            self._tools[idx] = self._next - 1
        args = fn.get("arguments")
        if not isinstance(args, str) or not args:
            return head
        assert self._block is not None
        return head + event(
            "content_block_delta",
            {"index": self._block, "delta": {"type": "input_json_delta", "partial_json": args}},
        )


class ChatStreamTranslator:
    """Upstream chat SSE bytes in, Messages API SSE bytes out (framing held by a bounded reader)."""

    __slots__ = ("_reader", "messages")

    def __init__(self, stop_sequences: Sequence[str] = (), max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._reader = SSEReader(
            drop_usage=False, keep_events=False, bounds=StreamBounds(max_event_bytes=max_event_bytes)
        )
        self.messages = ChatToMessages(stop_sequences)

    @property
    def finished(self) -> bool:
        return self.messages.ended

    def feed(self, raw: bytes) -> bytes:
        """Raises ``wire.sse.EventTooLarge`` past ``max_event_bytes``."""
        return self._translate(self._reader.feed(raw))

    def flush(self) -> bytes:
        return self._translate(self._reader.flush())

    def _translate(self, complete: bytes) -> bytes:
        if not complete:
            return b""
        out: list[bytes] = []
        m = self.messages
        for ev in split_events((complete,)):
            payload = parse_event(ev)[1]
            if not payload:
                continue
            if payload == DONE:
                out.append(m.done())
                continue
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError:
                out.append(m.error("The upstream sent an event that is not JSON.", "api_error"))
                continue
            out.append(m.chunk(doc))
        return b"".join(out)
