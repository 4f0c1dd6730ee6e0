"""Side-channel reader for relayed SSE streams.

Upstream bytes are forwarded as complete events arrive (an incomplete event is held until its blank line);
a copy of each event is checked for ``usage`` without parsing events that cannot carry it. The usage-only
chunk the gateway asked for (``stream_options.include_usage``) is dropped again when the client did not ask.
"""

from __future__ import annotations

from typing import Any

import orjson

from accounting.usage import Usage, usage_from_response

_USAGE = b'"usage"'
_NULL_USAGE = (b'"usage":null', b'"usage": null')


def event_payload(event: bytes) -> bytes | None:
    """The ``data:`` payload of one SSE event (multi-line data joined), or None."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].strip()
    parts = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(parts) if parts else None


class SSEReader:
    __slots__ = ("_buf", "usage", "drop_usage", "events", "keep_events", "model", "saw_done")

    def __init__(self, drop_usage: bool, keep_events: bool = True) -> None:
        self._buf = b""
        self.usage: Usage | None = None
        self.drop_usage = drop_usage
        self.events: list[bytes] = []
        """Complete event blocks as forwarded (for token estimation when no usage arrives)."""
        self.keep_events = keep_events
        self.model: str | None = None
        self.saw_done = False

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
        if _USAGE in complete:
            complete = self._scan(complete)
        elif not self.saw_done and b"[DONE]" in complete:
            self.saw_done = True
        return complete

    def flush(self) -> bytes:
        """Whatever is left when the upstream ends (an event without its trailing blank line)."""
        rest, self._buf = self._buf, b""
        if rest.strip():
            return rest + b"\n\n"
        return b""

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
