"""A JSON object as a client wrote it, and the same text with some of its top-level members changed.

The gateway forwards a request body byte for byte — numbers of any width and spelling, escapes, whitespace, key
order, members it does not know — and changes only the top-level members it must (docs/routing.md, "What the
gateway changes in a request"). ``JsonObject.with_members`` writes those changes:

- a member that is set and present keeps its key and the whitespace around it; only its value text changes;
- a member that is set and absent is added before the closing brace (``,"key":value``);
- a member that is dropped goes with one comma next to it.

Two ways to get there, with the same result:

- when the text is exactly what ``orjson.dumps`` makes of the parsed object (compact, minimal escapes, numbers as
  orjson writes them; what the OpenAI SDKs send), serializing the edited object *is* editing the text, and it is
  the fastest way;
- otherwise the top-level members are located once (``members``) and the text is cut and joined around the edited
  ones. Locating them skips each member's value: strings by their closing quote, objects and arrays by comparing
  them with their compact serialization, else by parsing them again.

Two kinds of valid JSON are refused:

- a text that names a top-level member twice (``DuplicateMember``): parsers disagree about which one counts, and
  the upstream must read the same document the gateway read;
- a document nested deeper than ``MAX_DEPTH`` levels (``TooDeep``): orjson, which parses 1,024 levels, writes
  only 254, and every part of the gateway that writes a request again (shadow pairs, capture, the litellm
  backend) must be able to, with a few levels to spare for what it wraps the request in. The check is orjson
  writing the document under that many extra levels: the same serialization tells whether the text is orjson's
  own (see above), so the check costs nothing extra.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import orjson

_WS = b" \t\r\n"
_QUOTE, _BACKSLASH, _COMMA, _CLOSE = 0x22, 0x5C, 0x2C, 0x7D
_OPENERS = (0x7B, 0x5B)  # { [
_SCALAR_END = re.compile(rb"[ \t\r\n,\]}]")

_WRITABLE_DEPTH = 254
"""The deepest document orjson writes (``orjson.dumps`` raises past it; tests/wire pins it)."""
MAX_DEPTH = 250
"""Nesting levels a document may have (the object itself is level 1): what orjson writes, less 4 levels for
the records the gateway keeps a request in."""
_SPARE = _WRITABLE_DEPTH - MAX_DEPTH


class TooDeep(ValueError):
    """The document is nested deeper than ``MAX_DEPTH`` levels."""

    def __init__(self) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")


class DuplicateMember(ValueError):
    """The object names ``key`` more than once at its top level."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the member {key!r} appears more than once")
        self.key = key


class Member:
    """Where one top-level member lies in the text (byte offsets)."""

    __slots__ = ("start", "value", "end")

    start: int
    """The key's opening quote."""
    value: int
    """The value's first byte."""
    end: int
    """One past the value's last byte."""

    def __init__(self, start: int, value: int, end: int) -> None:
        self.start = start
        self.value = value
        self.end = end


class JsonObject:
    """A JSON object's text and its parsed form (``doc``, never modified)."""

    __slots__ = ("_members", "doc", "text")

    def __init__(self, text: bytes, doc: dict[str, Any]) -> None:
        """``text`` must be the JSON text ``doc`` was parsed from. Raises ``TooDeep`` or ``DuplicateMember``."""
        self.text = text
        self.doc = doc
        self._members: dict[str, Member] | None = None
        written = _written_within(doc, MAX_DEPTH)
        if written is None:
            raise TooDeep()
        if len(written) != len(text) + 2 * _SPARE or not written.startswith(text, _SPARE):
            self._members = members(text, doc)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> JsonObject:
        """A document the gateway made itself (written the way orjson writes it)."""
        return cls(orjson.dumps(doc), doc)

    def with_members(self, set_: Mapping[str, Any], drop: Collection[str] = ()) -> bytes:
        """The text with each member of ``set_`` set to its value (serialized by orjson) and each of ``drop``
        removed (absent ones are ignored); everything else as it was."""
        spans = self._members
        if spans is None:  # the text is orjson's own: serializing the edited object gives the edited text
            if not drop:
                return orjson.dumps({**self.doc, **set_})
            doc = {k: v for k, v in self.doc.items() if k not in drop}
            doc.update(set_)
            return orjson.dumps(doc)
        return edited(self.text, spans, {k: orjson.dumps(v) for k, v in set_.items()}, drop)


def nests_within(value: Any, depth: int = MAX_DEPTH) -> bool:
    """Whether the parsed JSON ``value`` nests at most ``depth`` levels (``{}`` and ``[]`` are 1; at most 254)."""
    return _written_within(value, depth) is not None


def _written_within(value: Any, depth: int) -> bytes | None:
    """orjson's text of ``value`` under ``254 - depth`` levels of arrays, or None when ``value`` nests deeper than
    ``depth`` (then orjson cannot write it so)."""
    for _ in range(_WRITABLE_DEPTH - depth):
        value = [value]
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: for parsed JSON, only its depth
        return None


def members(text: bytes, doc: Mapping[str, Any]) -> dict[str, Member]:
    """Where each top-level member of the object ``text`` lies, in text order. ``doc`` is the object parsed from
    ``text`` (it lets object and array values be skipped without parsing them). Raises ``DuplicateMember``."""
    out: dict[str, Member] = {}
    opening = _skip_ws(text, 0)
    i = _skip_ws(text, opening + 1)
    if text[i] == _CLOSE:
        return out
    # Text with whitespace between its tokens is not written the way orjson writes it, nested values included:
    # skip the comparison with orjson's text for them.
    compact = i == opening + 1
    ascii_ = text.isascii()
    ws = _WS
    while True:
        start = i
        key_end = _string_end(text, i)
        key = _key(text, start, key_end)
        i = key_end + 1  # past the colon (and any whitespace before and after it)
        if text[key_end] in ws or text[i] in ws:
            compact = False
            i = _skip_ws(text, _skip_ws(text, key_end) + 1)
        value = i
        i = _value_end(text, i, doc.get(key) if compact else None, ascii_)
        if key in out:
            raise DuplicateMember(key)
        out[key] = Member(start, value, i)
        if text[i] in ws:
            i = _skip_ws(text, i)
        if text[i] != _COMMA:
            return out
        i += 1
        if text[i] in ws:
            i = _skip_ws(text, i)


def edited(
    text: bytes, spans: Mapping[str, Member], set_: Mapping[str, bytes], drop: Collection[str]
) -> bytes:
    """``text`` with the value text of each member in ``set_`` replaced (or the member added), and each member in
    ``drop`` removed with one adjacent comma. ``spans`` is ``members(text, ...)``."""
    order = list(spans.items())
    kept = [k not in drop for k, _ in order]
    cuts: list[tuple[int, int, bytes]] = []
    for idx, (key, m) in enumerate(order):
        if not kept[idx]:
            if any(kept[idx + 1 :]):  # the member and what separates it from the next
                cuts.append((m.start, order[idx + 1][1].start, b""))
            else:  # the last kept member's separator and the member
                before = next((order[j][1].end for j in range(idx - 1, -1, -1) if kept[j]), m.start)
                cuts.append((before, m.end, b""))
        elif key in set_:
            cuts.append((m.value, m.end, set_[key]))
    added = [orjson.dumps(k) + b":" + v for k, v in set_.items() if k not in spans]
    if added:
        close = text.rindex(b"}")
        cuts.append((close, close, (b"," if any(kept) else b"") + b",".join(added)))
    cuts.sort(key=lambda c: c[0])
    view = memoryview(text)
    pieces: list[bytes | memoryview] = []
    pos = 0
    for a, b, replacement in cuts:
        pieces.append(view[pos : max(a, pos)])
        pieces.append(replacement)
        pos = max(pos, b)
    pieces.append(view[pos:])
    return b"".join(pieces)


# -- scanning ---------------------------------------------------------------------------------------------------
def _skip_ws(text: bytes, i: int) -> int:
    while text[i] in _WS:
        i += 1
    return i


def _string_end(text: bytes, i: int) -> int:
    """One past the closing quote of the string whose opening quote is at ``i``."""
    j = text.find(b'"', i + 1)
    while text[j - 1] == _BACKSLASH:
        k = j - 1
        while text[k - 1] == _BACKSLASH:
            k -= 1
        if (j - k) % 2 == 0:  # an even run of backslashes escapes itself, not the quote
            break
        j = text.find(b'"', j + 1)
    return j + 1


def _key(text: bytes, start: int, end: int) -> str:
    raw = text[start + 1 : end - 1]
    if _BACKSLASH in raw:
        key: str = orjson.loads(text[start:end])
        return key
    return raw.decode()


def _value_end(text: bytes, i: int, parsed: Any, ascii_: bool) -> int:
    """One past the value at ``i``; ``parsed`` is the value as parsed, when it is worth comparing an object or
    array with orjson's text of it."""
    c = text[i]
    if c == _QUOTE:
        return _string_end(text, i)
    if c not in _OPENERS:  # number, true, false, null
        m = _SCALAR_END.search(text, i)
        return m.start() if m is not None else len(text)
    if isinstance(parsed, dict | list):
        try:
            compact = orjson.dumps(parsed)
        except orjson.JSONEncodeError:
            compact = b""
        # The same bytes parse the same way, so a match ends exactly where the value ends.
        if compact and text.startswith(compact, i):
            return i + len(compact)
    return _parsed_end(text, i, ascii_)


def _parsed_end(text: bytes, i: int, ascii_: bool) -> int:
    """One past the object or array at ``i``, found by parsing it: orjson stops at the content after it and says
    where (in characters, after whitespace)."""
    try:
        orjson.loads(memoryview(text)[i:])
    except orjson.JSONDecodeError as exc:
        chars = exc.pos
    else:  # pragma: no cover - an object member's value is always followed by more text
        return len(text)
    if ascii_:
        end = i + chars
    else:
        end = i + len(text[i : i + 4 * chars].decode("utf-8", "ignore")[:chars].encode())
    while text[end - 1] in _WS:
        end -= 1
    return end
