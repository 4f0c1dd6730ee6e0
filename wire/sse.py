"""Server-sent events as OpenAI streams them: framing, one event's name and data, and the relay reader.

``SSEReader`` is on the request path: upstream bytes are forwarded as complete events arrive (an incomplete
event is held until its blank line); a copy of each event is checked for ``usage`` without parsing events that
cannot carry it. The usage-only chunk the gateway asked for (``stream_options.include_usage``) is dropped again
when the client did not ask. ``split_events`` and ``json_events`` read recorded events back, off the path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from wire.usage import Usage, usage_from_response

DONE = b"[DONE]"
_USAGE = b'"usage"'
_SEQUENCE = b'"sequence_number":'
_NULL_USAGE = (b'"usage":null', b'"usage": null')


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
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].strip()
    return parse_event(event)[1]


def split_events(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Every non-blank event in blocks of SSE bytes (one block may hold several events; CRLF is read as LF)."""
    for block in blocks:
        if b"\r" in block:
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


class SSEReader:
    __slots__ = (
        "_buf",
        "usage",
        "drop_usage",
        "events",
        "keep_events",
        "model",
        "saw_done",
        "sequenced",
        "next_sequence",
    )

    def __init__(self, drop_usage: bool, keep_events: bool = True, sequenced: bool = False) -> None:
        self._buf = b""
        self.usage: Usage | None = None
        self.drop_usage = drop_usage
        self.events: list[bytes] = []
        """Complete event blocks as forwarded (for token estimation when no usage arrives)."""
        self.keep_events = keep_events
        self.model: str | None = None
        self.saw_done = False
        self.sequenced = sequenced
        """Follow the Responses API's ``sequence_number`` (for an error event that continues the count)."""
        self.next_sequence = 0
        """The sequence number the next event of a sequenced stream takes: one past the last one relayed."""

    def feed(self, chunk: bytes) -> bytes:
        """Take upstream bytes; return the bytes to forward now (complete events only)."""
        data = self._buf + chunk if self._buf else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buf = data
            return b""
        complete = data[: end + 2]
        self._buf = data[end + 2 :]
        if self.keep_events:
            self.events.append(complete)
        if self.sequenced:
            self._note_sequence(complete)
        if _USAGE in complete:
            complete = self._scan(complete)
        elif not self.saw_done and b"[DONE]" in complete:
            self.saw_done = True
        return complete

    def flush(self) -> bytes:
        """Whatever is left when the upstream ends (an event without its trailing blank line), read like any
        other event."""
        if self._buf.strip():
            return self.feed(b"\n\n")
        self._buf = b""
        return b""

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

    def _scan(self, block: bytes) -> bytes:
        out: list[bytes] = []
        dropped = False
        for ev in block.split(b"\n\n"):
            if not ev:
                continue
            if _USAGE in ev and not any(n in ev for n in _NULL_USAGE):
                payload = event_payload(ev)
                doc: Any = None
                if payload:
                    try:
                        doc = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        doc = None
                u = usage_from_response(doc)
                if u is not None:
                    self.usage = u
                    if self.drop_usage and isinstance(doc, dict) and doc.get("choices") == []:
                        dropped = True
                        continue
            elif b"[DONE]" in ev:
                self.saw_done = True
            out.append(ev)
        if not dropped:
            return block
        return b"".join(e + b"\n\n" for e in out)
