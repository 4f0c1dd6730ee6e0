"""What makes a Messages API event sequence valid (the order Anthropic's clients rely on), as a checker tests
share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from wire.sse import parse_event, split_events


def parsed(blocks: Iterable[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every event; the name must match the data's ``type``."""
    out: list[tuple[str, dict[str, Any]]] = []
    for ev in split_events(blocks):
        name, payload = parse_event(ev)
        assert name is not None and payload is not None, ev
        doc = orjson.loads(payload)
        assert doc["type"] == name, ev
        out.append((name, doc))
    return out


def check_sequence(blocks: Iterable[bytes], complete: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """Assert the events are a valid Messages stream: ``message_start`` first; blocks opened in index order
    from 0, each given deltas of its own kind only while open, closed once, one open at a time; then
    ``message_delta`` and ``message_stop`` last (``complete``), or an ``error`` event ending it early."""
    events = parsed(blocks)
    assert events and events[0][0] == "message_start", events[:1]
    open_index: int | None = None
    open_kind = ""
    next_index = 0
    saw_delta = False
    for i, (name, doc) in enumerate(events[1:], 1):
        if name == "ping":
            continue
        if name == "error":
            assert i == len(events) - 1, "nothing follows an error event"
            return events
        assert not saw_delta or name == "message_stop", f"{name} after message_delta"
        if name == "content_block_start":
            assert open_index is None, f"block {doc['index']} opened while {open_index} is open"
            assert doc["index"] == next_index, (doc["index"], next_index)
            open_index, open_kind = doc["index"], doc["content_block"]["type"]
            next_index += 1
        elif name == "content_block_delta":
            assert doc["index"] == open_index, (doc, open_index)
            kind = doc["delta"]["type"]
            allowed = {
                "text": {"text_delta", "citations_delta"},
                "tool_use": {"input_json_delta"},
                "thinking": {"thinking_delta", "signature_delta"},
            }
            assert kind in allowed.get(open_kind, {kind}), (open_kind, kind)
        elif name == "content_block_stop":
            assert doc["index"] == open_index, (doc, open_index)
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta with a block open"
            assert "stop_reason" in doc["delta"] and "output_tokens" in doc["usage"]
            saw_delta = True
        elif name == "message_stop":
            assert saw_delta and i == len(events) - 1, "message_stop ends the stream, after message_delta"
        else:
            raise AssertionError(f"unknown event {name}")
    if complete:
        assert events[-1][0] == "message_stop", events[-1]
    return events
