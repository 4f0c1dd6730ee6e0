"""A JSON object's text with some top-level members changed, everything else byte for byte (pure; no sockets)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.json_object import MAX_DEPTH, DuplicateMember, JsonObject, TooDeep, edited, members


def obj(text: bytes) -> JsonObject:
    return JsonObject(text, orjson.loads(text))


def member_texts(text: bytes) -> dict[str, bytes]:
    """Each top-level member's value text, found by a stdlib parser (an independent check on ``members``)."""
    s = text.decode()
    dec = json.JSONDecoder()
    out: dict[str, bytes] = {}
    i = s.index("{") + 1
    while True:
        while s[i] in " \t\r\n,":
            i += 1
        if s[i] == "}":
            return out
        key, i = dec.raw_decode(s, i)
        i = s.index(":", i) + 1
        while s[i] in " \t\r\n":
            i += 1
        _, end = dec.raw_decode(s, i)
        out[key] = s[i:end].encode()
        i = end


def test_members_are_located_exactly_whatever_the_spelling() -> None:
    text = (
        b' {\n  "a" : "x\\"}]\\\\" ,"n":123456789012345678901234567890,\t"o": { "k" : [1, "]"] },'
        b' "mod\\u0065l":"m", "caf\xc3\xa9": [ "\xc3\xa9" ] , "t":true }\n'
    )
    spans = members(text, orjson.loads(text))
    assert list(spans) == ["a", "n", "o", "model", "caf\u00e9", "t"]
    assert {k: text[m.value : m.end] for k, m in spans.items()} == {
        k: v for k, v in zip(spans, member_texts(text).values(), strict=True)
    }
    assert text[spans["model"].start : spans["model"].value] == b'"mod\\u0065l":'


def test_the_compact_text_of_a_nested_value_is_skipped_without_parsing_it_again() -> None:
    text = b'{"messages":[{"role":"user","content":"a \\"quoted\\" ] and }"}], "model":"m"}'
    spans = members(text, orjson.loads(text))
    assert (
        text[spans["messages"].value : spans["messages"].end]
        == b'[{"role":"user","content":"a \\"quoted\\" ] and }"}]'
    )


def test_a_member_named_twice_is_refused() -> None:
    with pytest.raises(DuplicateMember) as exc:
        obj(b'{"model": "a", "x": 1, "mod\\u0065l": "b"}')
    assert exc.value.key == "model"


def nested(depth: int) -> dict[str, Any]:
    inner: Any = []
    for _ in range(depth - 2):
        inner = [inner]
    return {"x": inner}


def test_orjson_writes_254_levels_and_no_more() -> None:
    """The depth check relies on it: if an orjson upgrade changes it, MAX_DEPTH's reasoning must be redone."""
    orjson.dumps(nested(254))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(255))


def test_documents_up_to_max_depth_are_accepted_and_deeper_ones_refused() -> None:
    JsonObject.of(nested(MAX_DEPTH))
    text = json.dumps(nested(MAX_DEPTH), indent=1).encode()
    JsonObject(text, orjson.loads(text))
    for depth in (MAX_DEPTH + 1, 254, 255, 1000):
        text = b'{"x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
        with pytest.raises(TooDeep):
            JsonObject(text, orjson.loads(text))


def test_a_set_member_keeps_its_key_and_whitespace_and_only_its_value_changes() -> None:
    text = b'{ "model" :  "a" , "seed": 1E300 }'
    assert obj(text).with_members({"model": "b"}) == b'{ "model" :  "b" , "seed": 1E300 }'


def test_an_absent_member_is_added_before_the_closing_brace() -> None:
    assert obj(b'{"a": 1.50 }\n').with_members({"b": [1]}) == b'{"a": 1.50 ,"b":[1]}\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a": 1, "m": {"x": 2}, "b": 3}', b'{"a": 1, "b": 3}'),
        (b'{"m": {"x": 2} , "a": 1}', b'{"a": 1}'),
        (b'{"a": 1 , "m": {}}', b'{"a": 1}'),
        (b'{"a": 1, "m": 1, "n": 2}', b'{"a": 1}'),
        (b'{"m": 1, "n": 2, "a": 1}', b'{"a": 1}'),
        (b'{"m": 1}', b"{}"),
    ],
)
def test_a_dropped_member_goes_with_one_comma(text: bytes, expected: bytes) -> None:
    got = obj(text + b" ").with_members({}, ("m", "n"))
    assert got == expected + b" "
    orjson.loads(got)


def test_dropping_every_member_then_adding_one_needs_no_comma() -> None:
    text = b'{"m": 1 }'
    spans = members(text, orjson.loads(text))
    assert edited(text, spans, {"x": b"2"}, ("m",)) == b'{ "x":2}'


def test_a_document_the_gateway_made_is_written_the_way_orjson_writes_it() -> None:
    body = JsonObject.of({"model": "a", "n": 1})
    assert body.text == b'{"model":"a","n":1}'
    assert body.with_members({"model": "b", "x": None}, ("n",)) == b'{"model":"b","x":null}'


# -- property: both ways of editing agree, and nothing but the edits changes ------------------------------------------
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=10),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)
documents = st.dictionaries(st.text(max_size=6), json_value, min_size=1, max_size=6)


@st.composite
def edits(draw: st.DrawFn, doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    keys = sorted(doc)
    drop = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys) - 1))
    set_ = draw(
        st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)), json_value, max_size=3)
    )
    return {k: v for k, v in set_.items() if k not in drop}, drop


@settings(max_examples=300, deadline=None)
@given(data=st.data(), doc=documents)
def test_editing_orjsons_text_equals_serializing_the_edited_object(
    data: st.DataObject, doc: dict[str, Any]
) -> None:
    set_, drop = data.draw(edits(doc))
    text = orjson.dumps(doc)
    by_bytes = edited(text, members(text, doc), {k: orjson.dumps(v) for k, v in set_.items()}, drop)
    assert by_bytes == JsonObject(text, doc).with_members(set_, drop)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), doc=documents, indent=st.sampled_from([None, 1, 4]), ascii_=st.booleans())
def test_other_spellings_keep_every_untouched_member_byte_for_byte(
    data: st.DataObject, doc: dict[str, Any], indent: int | None, ascii_: bool
) -> None:
    set_, drop = data.draw(edits(doc))
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_).encode()
    out = JsonObject(text, orjson.loads(text)).with_members(set_, drop)
    want = {k: v for k, v in orjson.loads(text).items() if k not in drop}
    want.update(orjson.loads(orjson.dumps(set_)))
    assert orjson.loads(out) == want
    before, after = member_texts(text), member_texts(out)
    assert list(after) == [k for k in before if k not in drop] + [k for k in set_ if k not in before]
    for k, v in before.items():
        if k not in drop and k not in set_:
            assert after[k] == v
