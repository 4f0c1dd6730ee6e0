"""Server-sent events as OpenAI streams them: framing, one event's name and data, and the relay reader.

``SSEReader`` is on the request path: upstream bytes are forwarded as complete events arrive (an incomplete
event is held until its blank line); a copy of each event is checked for ``usage`` without parsing events that
cannot carry it. The usage-only chunk the gateway asked for (``stream_options.include_usage``) is dropped again
when the client did not ask. ``split_events`` and ``json_events`` read recorded events back, off the path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

import orjson

from wire.sse_errors import EventTooLarge as EventTooLarge
from wire.usage import Usage, merge_messages_usage, parse_usage, reported_messages_usage, usage_from_response

DONE = b"[DONE]"
_USAGE = b'"usage"'
_SEQUENCE = b'"sequence_number":'
_NULL_USAGE = (b'"usage":null', b'"usage": null')
RESPONSE_END_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
"""The events that end a Responses API stream (it sends no ``[DONE]``)."""
_RESPONSE_END = (b"response.completed", b"response.failed", b"response.incomplete", b"error")
MESSAGES_END_EVENTS = frozenset({"message_stop", "error"})
"""The events that end an Anthropic Messages API stream."""
_MESSAGES_END = (b"message_stop", b"error")


def parse_event(event: bytes) -> tuple[str | None, bytes | None]:
    """(``event:`` name, ``data:`` payload with multi-line data joined) of one event; None where absent."""
    name: str | None = None
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].strip())
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, b"\n".join(data) if data else None


def event_payload(event: bytes) -> bytes | None:
    """The ``data:`` payload of one SSE event (multi-line data joined), or None."""
    if event.startswith(b"data:") and event.find(b"\n") < 0:
        return event[5:].strip()
    return parse_event(event)[1]


def split_events(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Every non-blank event in blocks of SSE bytes (one block may hold several events; CRLF is read as LF)."""
    for block in blocks:
        if block.find(b"\r") >= 0:
            block = block.replace(b"\r\n", b"\n")
        for ev in block.split(b"\n\n"):
            if ev.strip():
                yield ev


def json_events(blocks: Iterable[bytes]) -> Iterator[tuple[str | None, Any]]:
    """(event name, parsed data) of every event with data; ``[DONE]`` and data that is not JSON are skipped."""
    for ev in split_events(blocks):
        name, payload = parse_event(ev)
        if not payload or payload == DONE:
            continue
        try:
            yield name, orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue


_BLANK_SLACK = 3


def _oversized_event(block: bytes, cap: int) -> int | None:
    """Where the first event of ``block`` (complete events, LF-framed) longer than ``cap`` bytes starts."""
    start = 0
    while start < len(block):
        end = block.find(b"\n\n", start)
        if end < 0:
            end = len(block)
        if end - start > cap:
            return start
        start = end + 2
    return None


class StreamBounds:
    """How much of a stream the reader holds: one incomplete event, and the relayed events it keeps."""

    __slots__ = ("max_event_bytes", "max_retained_bytes")

    max_event_bytes: Final[int | None]
    """An event larger than this (before its blank line) raises ``EventTooLarge``; None: no bound."""
    max_retained_bytes: Final[int | None]
    """Events are kept in ``SSEReader.events`` up to this many bytes; None: all of them."""

    def __init__(self, max_event_bytes: int | None = None, max_retained_bytes: int | None = None) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_retained_bytes = max_retained_bytes


UNBOUNDED = StreamBounds()


class SSEReader:
    """The relay reader: complete events out as they arrive, usage noted, the stream's end recognised.

    Memory and time are bounded and linear in the bytes read (``bounds``): an incomplete event is held as a
    list of chunks (only the few bytes around each chunk's start are searched again for its blank line, never
    the whole held event), at most ``max_event_bytes`` of it (past that, ``feed`` raises ``EventTooLarge``);
    relayed events are kept in ``events`` only up to ``max_retained_bytes`` (past that, ``retained_all`` is
    False and the rest is relayed without being kept). ``finished`` tells a stream that ended properly — ``data: [DONE]``, or
    a Responses API stream's final ``response.completed``/``failed``/``incomplete`` or ``error`` event — from
    one that was cut off.
    """

    __slots__ = (
        "_oversized",
        "_held",
        "_tail",
        "_held_bytes",
        "usage",
        "drop_usage",
        "events",
        "keep_events",
        "retained_bytes",
        "retained_all",
        "max_event_bytes",
        "max_retained_bytes",
        "model",
        "saw_done",
        "saw_end",
        "sequenced",
        "next_sequence",
        "messages",
        "_messages_usage",
    )

    def __init__(
        self,
        drop_usage: bool,
        keep_events: bool = True,
        sequenced: bool = False,
        bounds: StreamBounds = UNBOUNDED,
        messages: bool = False,
    ) -> None:
        self._oversized = False
        self._held: list[bytes] = []
        """The pieces of an incomplete event (joined once, when its blank line arrives)."""
        self._held_bytes = 0
        self._tail = b""
        """The held bytes' last three: a blank line (``\\n\\n``, ``\\r\\n\\r\\n``) may straddle chunks."""
        self.usage: Usage | None = None
        self.drop_usage = drop_usage
        self.events: list[bytes] = []
        """Complete event blocks as forwarded (for token estimation when no usage arrives, shadow, capture),
        up to ``max_retained_bytes``."""
        self.keep_events = keep_events
        self.retained_bytes = 0
        self.retained_all = True
        """False once a block was relayed but not kept (``events`` is then only the stream's beginning)."""
        self.max_event_bytes = bounds.max_event_bytes
        self.max_retained_bytes = bounds.max_retained_bytes
        self.model: str | None = None
        self.saw_done = False
        self.saw_end = False
        """A Responses API stream's final event (``response.completed``/``failed``/``incomplete``, ``error``)."""
        self.sequenced = sequenced
        """Follow the Responses API's ``sequence_number`` (for an error event that continues the count), and
        recognise its final events."""
        self.next_sequence = 0
        """The sequence number the next event of a sequenced stream takes: one past the last one relayed."""
        self.messages = messages
        """An Anthropic Messages API stream: it ends with ``message_stop`` (or ``error``); its usage is
        ``message_start``'s with each ``message_delta``'s cumulative totals over it."""
        self._messages_usage: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether the stream's own end was relayed (a stream that stops before it was cut off)."""
        return self.saw_done or self.saw_end

    def feed(self, chunk: bytes) -> bytes:
        """Take upstream bytes; return the bytes to forward now (complete events only). Raises ``EventTooLarge``
        once an event is past ``max_event_bytes`` (after returning the complete events before it)."""
        if self._oversized:
            raise EventTooLarge(self._cap())
        if self._held:
            # An event is incomplete: look for its end only where this chunk can complete it.
            window = self._tail + chunk
            if window.find(b"\r") >= 0:
                window = window.replace(b"\r\n", b"\n")
            if window.find(b"\n\n") < 0:
                return self._hold(chunk)
            self._held.append(chunk)
            data = b"".join(self._held)
            self._release()
        else:
            data = chunk
        if data.find(b"\r") >= 0:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            return self._hold(data)
        complete = data[: end + 2]
        cap = self.max_event_bytes
        if cap is not None and len(complete) > cap and (at := _oversized_event(complete, cap)) is not None:
            complete = complete[:at]  # what came before it is relayed; the next feed or flush raises
            self._oversized = True
        elif end + 2 < len(data):
            self._hold(data[end + 2 :], later=True)
        if not complete:
            return b""
        if self.keep_events:
            self._retain(complete)
        if self.sequenced:
            self._note_sequence(complete)
            if not self.saw_end and any(m in complete for m in _RESPONSE_END):
                self._note_end(complete, RESPONSE_END_EVENTS, _RESPONSE_END)
        elif self.messages and not self.saw_end and any(m in complete for m in _MESSAGES_END):
            self._note_end(complete, MESSAGES_END_EVENTS, _MESSAGES_END)
        if complete.find(_USAGE) >= 0:
            complete = self._scan(complete)
        elif not self.saw_done and complete.find(DONE) >= 0:
            self.saw_done = True
        return complete

    def flush(self) -> bytes:
        """Whatever is left when the upstream ends (an event without its trailing blank line), read like any
        other event."""
        if self._oversized:
            raise EventTooLarge(self._cap())
        if any(piece.strip() for piece in self._held):
            return self.feed(b"\n\n")
        self._release()
        return b""

    def _cap(self) -> int:
        assert self.max_event_bytes is not None
        return self.max_event_bytes

    def _hold(self, piece: bytes, later: bool = False) -> bytes:
        """Hold ``piece`` of an incomplete event; nothing to forward yet. Past ``max_event_bytes`` raises now, or
        with ``later`` at the next ``feed``/``flush`` (complete events before it are forwarded first)."""
        self._held.append(piece)
        self._held_bytes += len(piece)
        self._tail = piece[-3:] if len(piece) >= 3 else (self._tail + piece)[-3:]
        # what is held may end with part of its blank line (``\r\n\r``): a few bytes of slack
        if self.max_event_bytes is not None and self._held_bytes > self.max_event_bytes + _BLANK_SLACK:
            self._release()
            self._oversized = True
            if not later:
                raise EventTooLarge(self.max_event_bytes)
        return b""

    def _release(self) -> None:
        self._held = []
        self._held_bytes = 0
        self._tail = b""

    def _retain(self, block: bytes) -> None:
        if not self.retained_all:
            return
        cap = self.max_retained_bytes
        if cap is not None and self.retained_bytes + len(block) > cap:
            self.retained_all = False
            return
        self.events.append(block)
        self.retained_bytes += len(block)

    def _note_end(self, block: bytes, ends: frozenset[str], marks: tuple[bytes, ...]) -> None:
        for ev in block.split(b"\n\n"):
            if not any(m in ev for m in marks):
                continue
            name, payload = parse_event(ev)
            if name is None and payload:
                try:
                    doc = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                name = doc.get("type") if isinstance(doc, dict) else None
            if name in ends:
                self.saw_end = True
                return

    def _note_sequence(self, block: bytes) -> None:
        # The last top-level ``"sequence_number":`` of the block is its last event's (inside a JSON string the
        # quotes would be escaped, so text cannot fake it).
        at = block.rfind(_SEQUENCE)
        if at < 0:
            return
        digits = block[at + len(_SEQUENCE) : at + len(_SEQUENCE) + 24].lstrip()
        end = 0
        while end < len(digits) and 48 <= digits[end] <= 57:
            end += 1
        if end:
            self.next_sequence = int(digits[:end]) + 1

    def _messages_event_usage(self, doc: Any) -> Usage | None:
        merged = merge_messages_usage(self._messages_usage, doc)
        if merged is None:
            return None
        self._messages_usage = merged
        return reported_messages_usage(parse_usage(merged))

    def _scan(self, block: bytes) -> bytes:
        """Read the usage of ``block``'s events that carry one, drop the usage-only chunks the client did not ask
        for, and note ``[DONE]``. Only the events where ``"usage"`` occurs are cut out and read; the others (all
        but the last of a chat stream) pass untouched."""
        if block.find(b"\n\n\n") >= 0:  # blank events, dropped as events are rejoined: the slow way
            return self._scan_events(block)
        kept: list[bytes] = []
        kept_from = 0  # block[kept_from:] is kept so far
        done_from = 0  # where to look for [DONE] next, in events that carry no usage
        at = block.find(_USAGE)
        while at >= 0:
            before = block.rfind(b"\n\n", 0, at)
            start = before + 2 if before >= 0 else 0
            end = block.find(b"\n\n", at)
            if end < 0:
                end = len(block)
            if not self.saw_done and block.find(DONE, done_from, start) >= 0:
                self.saw_done = True
            ev = block[start:end]
            if ev.find(_NULL_USAGE[0]) >= 0 or ev.find(_NULL_USAGE[1]) >= 0:
                if ev.find(DONE) >= 0:
                    self.saw_done = True
            elif self._read_usage(ev):
                kept.append(block[kept_from:start])
                kept_from = end + 2
            done_from = end
            at = block.find(_USAGE, end)
        if not self.saw_done and block.find(DONE, done_from) >= 0:
            self.saw_done = True
        if not kept:
            return block
        kept.append(block[kept_from:])
        return b"".join(kept)

    def _read_usage(self, ev: bytes) -> bool:
        """Take the usage of one event that carries one; True when the event is to be dropped (a usage-only
        chunk the client did not ask for)."""
        payload = event_payload(ev)
        doc: Any = None
        if payload:
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError:
                doc = None
        u = self._messages_event_usage(doc) if self.messages else usage_from_response(doc)
        if u is None:
            return False
        self.usage = u
        return self.drop_usage and isinstance(doc, dict) and doc.get("choices") == []

    def _scan_events(self, block: bytes) -> bytes:
        out: list[bytes] = []
        dropped = False
        for ev in block.split(b"\n\n"):
            if not ev:
                continue
            if ev.find(_USAGE) >= 0 and ev.find(_NULL_USAGE[0]) < 0 and ev.find(_NULL_USAGE[1]) < 0:
                if self._read_usage(ev):
                    dropped = True
                    continue
            elif ev.find(DONE) >= 0:
                self.saw_done = True
            out.append(ev)
        if not dropped:
            return block
        return b"".join(e + b"\n\n" for e in out)
