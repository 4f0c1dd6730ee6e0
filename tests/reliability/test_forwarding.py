"""What the upstream receives, read from the bytes a fake upstream was sent by a running ``pointsman serve``: the
client's JSON document byte for byte — numbers of any width and spelling, escapes, whitespace, key order,
unknown members — apart from the documented edits (the model renamed to its upstream id, ``stream_options``
asking for usage, ``metadata`` cut for a backend that takes none, route defaults added). Bodies nested past the
documented depth are a 400; every body accepted is forwarded."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY
from tests.gateway_runner import GatewayProcess
from tests.reliability.conftest import FUZZ_DEFAULTS
from tests.reliability.faults import RobustOpenAI
from tests.reliability.probes import CLIENT, openai_error
from tests.reliability.test_fuzz_inputs import MAX_DEPTH, fuzz_settings, json_value

RENAMED = {"alias": "gpt-4o-mini-2024-07-18"}
REQUIRED = {
    "chat/completions": "messages",
    "completions": "prompt",
    "embeddings": "input",
    "responses": "input",
}
KNOWN = {
    "model",
    "messages",
    "prompt",
    "input",
    "stream",
    "stream_options",
    "metadata",
    "max_tokens",
    "n",
    "user",
    "max_completion_tokens",
    "max_output_tokens",
    "temperature",
    "top_p",
    "previous_response_id",
}
"""Members the gateway reads or checks; generated unknown members avoid them."""


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def send(gw: GatewayProcess, client: httpx.Client, endpoint: str, text: bytes) -> tuple[httpx.Response, str]:
    rid = uuid.uuid4().hex
    headers = {**CLIENT, "content-type": "application/json", "x-request-id": rid}
    with client.stream("POST", f"{gw.url}/v1/{endpoint}", content=text, headers=headers) as r:
        r.read()
    return r, rid


def forwarded(
    gw: GatewayProcess,
    up: RobustOpenAI,
    client: httpx.Client,
    text: bytes,
    endpoint: str = "chat/completions",
) -> bytes:
    r, rid = send(gw, client, endpoint, text)
    assert r.status_code == 200, r.text[:300]
    return up.raw_bodies[rid]


# -- hand-picked ---------------------------------------------------------------------------------------------------
def test_an_integer_wider_than_64_bits_reaches_the_upstream_as_sent(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"seed":123456789012345678901234567890}'
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == text


def test_a_body_in_another_style_reaches_the_upstream_byte_for_byte(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    body = {
        "temperature": 1.0,
        "messages": [{"role": "user", "content": 'caf\u00e9 "q" \\ /'}],
        "x-unknown": {"b": [1.5e-7, -0.0, 10**30]},
        "model": "gpt-4o-mini",
    }
    text = json.dumps(body, indent=2).replace('"temperature": 1.0', '"temperature": 1.00E0').encode() + b"\n"
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == text


def test_a_renamed_model_changes_only_the_model_value(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{ "messages" : [ {"role": "user", "content": "hi"} ],\n  "model" :  "alias" , "seed": 1E3 }'
    expected = text.replace(b'"alias"', b'"gpt-4o-mini-2024-07-18"')
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == expected


def test_metadata_is_cut_with_its_comma_for_a_backend_that_takes_none(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{"model": "stripped-model", "metadata": {"task": "x"}, "messages": [{"role": "user", "content": "hi"}]}'
    expected = b'{"model": "stripped-model", "messages": [{"role": "user", "content": "hi"}]}'
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == expected


def test_a_stream_asks_for_usage_and_the_rest_is_as_sent(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = (
        b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}], "n": 1}'
    )
    expected = text[:-1] + b',"stream_options":{"include_usage":true}}'
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == expected


def test_route_defaults_are_added_for_members_the_client_did_not_send(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{"model": "defaults-model", "top_p": 0.25, "messages": [{"role": "user", "content": "hi"}]}'
    expected = text[:-1] + b',"max_tokens":7}'
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == expected


def test_an_embeddings_request_gets_no_route_defaults(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{"model": "defaults-model", "input": "hi"}'
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text, "embeddings") == text


def test_a_responses_request_gets_the_routes_output_limit_as_max_output_tokens(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{"model": "defaults-model", "input": "hi"}'
    expected = text[:-1] + b',"max_output_tokens":7,"top_p":0.5}'
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text, "responses") == expected


def test_a_clients_max_completion_tokens_is_not_joined_by_the_routes_max_tokens(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{"model": "defaults-model", "max_completion_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}'
    expected = text[:-1] + b',"top_p":0.5}'
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == expected


def test_a_body_naming_a_top_level_member_twice_is_400(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    text = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o-mini"}'
    r, _ = send(fuzz_gateway, client, "chat/completions", text)
    assert r.status_code == 400, r.text
    err = openai_error(r)
    assert (err["code"], err["param"]) == ("duplicate_member", "model")


# -- nesting ------------------------------------------------------------------------------------------------------
def nested(depth: int) -> bytes:
    """A valid chat body whose deepest value is ``depth`` levels down (the body itself is level 1)."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x":' + inner + b"}"


def test_nesting_up_to_the_limit_is_forwarded(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = nested(MAX_DEPTH)
    assert forwarded(fuzz_gateway, fuzz_upstream, client, text) == text


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 253, 254, 255, 300, 1023, 1025, 5000])
def test_nesting_past_the_limit_is_400(
    fuzz_gateway: GatewayProcess, client: httpx.Client, depth: int
) -> None:
    r, _ = send(fuzz_gateway, client, "chat/completions", nested(depth))
    assert r.status_code == 400, r.text[:300]
    assert openai_error(r)["code"] == "nesting_too_deep"


@pytest.mark.parametrize("depth", [300, 1025, 5000])
def test_nesting_past_the_limit_is_400_on_admin_endpoints(
    fuzz_gateway: GatewayProcess, client: httpx.Client, depth: int
) -> None:
    """Past orjson's 1,024 levels too (Python's json parser then fails with a RecursionError inside FastAPI)."""
    body = b'{"model":"gpt-4o-mini","tags":{},"x":' + b"[" * depth + b"]" * depth + b"}"
    r = client.post(
        fuzz_gateway.url + "/admin/routes/explain",
        content=body,
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text[:300]
    assert openai_error(r)["code"] == "nesting_too_deep"


# -- property: what is sent is what arrives, apart from the documented edits ------------------------------------------
@dataclass
class Written:
    """A body as the test wrote it: each member's key and value text and the whitespace around them."""

    endpoint: str
    model: str
    doc: dict[str, Any]
    members: list[tuple[str, bytes, bytes]]
    """(key, member text up to and including the colon and its whitespace, value text)."""
    seps: list[bytes]
    """What comes between member i and i+1 (one comma and whitespace)."""
    head: bytes
    tail: bytes

    @property
    def text(self) -> bytes:
        out = self.head
        for i, (_, key_part, value) in enumerate(self.members):
            out += (self.seps[i - 1] if i else b"") + key_part + value
        return out + self.tail

    def expected(self) -> bytes:
        """What the upstream should receive, by the rules in docs/routing.md."""
        stream = self.doc.get("stream") is True
        set_: dict[str, Any] = {}
        if self.model in RENAMED:
            set_["model"] = RENAMED[self.model]
        if self.model == "defaults-model" and self.endpoint != "embeddings":  # (docs/routing.md)
            limit = "max_output_tokens" if self.endpoint == "responses" else "max_tokens"
            if limit not in self.doc:
                set_[limit] = FUZZ_DEFAULTS["max_tokens"]
            if "top_p" not in self.doc:
                set_["top_p"] = FUZZ_DEFAULTS["top_p"]
        so = self.doc.get("stream_options")
        if (
            stream
            and self.endpoint in ("chat/completions", "completions")
            and not (isinstance(so, dict) and so.get("include_usage") is True)
        ):
            set_["stream_options"] = (
                {**so, "include_usage": True} if isinstance(so, dict) else {"include_usage": True}
            )
        drop = {"metadata"} if self.model == "stripped-model" else set()
        kept = [m for m in self.members if m[0] not in drop]
        out = self.head
        first, pending = True, None
        for i, (key, key_part, value) in enumerate(self.members):
            if key in drop:  # cut with the separator after it; the one before a run of cut members stays
                if pending is None and i:
                    pending = self.seps[i - 1]
                continue
            if not first:
                out += pending if pending is not None else self.seps[i - 1]
            first, pending = False, None
            out += key_part + (orjson.dumps(set_[key]) if key in set_ else value)
        added = [orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in set_.items() if k not in self.doc]
        if added:
            ws, close = self.tail[: self.tail.index(b"}")], self.tail[self.tail.index(b"}") :]
            out += ws + (b"," if kept else b"") + b",".join(added) + close
        else:
            out += self.tail
        return out


WS = st.sampled_from([b"", b" ", b"\n  ", b"\t", b"\r\n"])
number_text = st.one_of(
    st.integers(-(10**40), 10**40).map(lambda n: str(n).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
    st.sampled_from([b"-0", b"0.10", b"1.5e+3", b"2E-7", b"-0.0", b"1E308"]),
)


@st.composite
def value_text(draw: st.DrawFn, value: Any) -> bytes:
    """``value`` written in one of the styles clients use."""
    style = draw(st.sampled_from(["orjson", "spaced", "ascii", "indent"]))
    if style == "orjson" and fits_orjson(value):
        return orjson.dumps(value)
    return json.dumps(value, ensure_ascii=style == "ascii", indent=2 if style == "indent" else None).encode()


@st.composite
def key_text(draw: st.DrawFn, key: str) -> bytes:
    if key and key.isascii() and draw(st.booleans()):  # one letter written as a \\u escape
        i = draw(st.integers(0, len(key) - 1))
        return (
            b'"'
            + json.dumps(key[:i])[1:-1].encode()
            + b"\\u%04x" % ord(key[i])
            + json.dumps(key[i + 1 :])[1:-1].encode()
            + b'"'
        )
    return json.dumps(key, ensure_ascii=draw(st.booleans())).encode()


def fits_orjson(doc: Any) -> bool:
    try:
        orjson.dumps(doc)
    except TypeError:  # integers wider than 64 bits
        return False
    return True


@st.composite
def written_bodies(draw: st.DrawFn) -> Written:
    endpoint = draw(st.sampled_from(sorted(REQUIRED)))
    model = draw(st.sampled_from(["gpt-4o-mini", "alias", "stripped-model", "defaults-model"]))
    doc: dict[str, Any] = {"model": model}
    field = REQUIRED[endpoint]
    doc[field] = (
        [{"role": "user", "content": draw(st.text(max_size=30))}]
        if field == "messages"
        else draw(st.text(min_size=1, max_size=30))
    )
    if endpoint != "embeddings" and draw(st.booleans()):
        doc["stream"] = True
        if draw(st.booleans()):
            doc["stream_options"] = draw(
                st.fixed_dictionaries({}, optional={"include_usage": st.booleans(), "x": json_value})
            )
    if draw(st.booleans()):
        doc["metadata"] = draw(
            st.dictionaries(st.sampled_from(["task", "team_note", "k"]), st.text(max_size=8), max_size=2)
        )
    for name in draw(
        st.lists(st.sampled_from(["max_tokens", "top_p", "temperature"]), unique=True, max_size=2)
    ):
        doc[name] = {"max_tokens": 5, "top_p": 0.5, "temperature": 0.7}[name]
    unknown = draw(
        st.dictionaries(
            st.text(min_size=1, max_size=8).filter(lambda k: k not in KNOWN), json_value, max_size=3
        )
    )
    order = draw(st.permutations([*doc, *unknown]))
    full = {k: doc.get(k, unknown.get(k)) for k in order}
    if draw(st.booleans()) and fits_orjson(full):  # orjson's own style: the gateway edits by serializing
        members = [(k, orjson.dumps(k) + b":", orjson.dumps(full[k])) for k in order]
        return Written(endpoint, model, full, members, [b","] * len(order), b"{", b"}")
    members = []
    full = {}
    for k in order:
        if k in doc:
            text = draw(value_text(doc[k]))
        elif draw(st.booleans()):  # an unknown number spelled as a client may spell it
            text = draw(number_text)
        else:
            text = draw(value_text(unknown[k]))
        full[k] = orjson.loads(text)  # as the gateway reads it (wide integers become floats)
        members.append((k, draw(key_text(k)) + draw(WS) + b":" + draw(WS), text))
    seps = [draw(WS) + b"," + draw(WS) for _ in order]
    return Written(
        endpoint, model, full, members, seps, draw(WS) + b"{" + draw(WS), draw(WS) + b"}" + draw(WS)
    )


def run_forwarding(gw: GatewayProcess, up: RobustOpenAI, client: httpx.Client, profile: str) -> None:
    seen = {"canonical": 0, "other": 0}

    @fuzz_settings(profile)
    @given(w=written_bodies())
    def one(w: Written) -> None:
        text = w.text
        r, rid = send(gw, client, w.endpoint, text)
        assert r.status_code == 200, f"{text!r}: {r.status_code} {r.text[:300]}"
        got = up.raw_bodies[rid]
        assert got == w.expected(), f"sent {text!r}\ngot  {got!r}\nwant {w.expected()!r}"
        seen["canonical" if text == orjson.dumps(orjson.loads(text)) else "other"] += 1

    one()
    print(f"\nforwarding ({profile}): {seen}")
    assert seen["canonical"] and seen["other"]


def test_the_upstream_receives_the_clients_document_apart_from_the_documented_edits(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    run_forwarding(fuzz_gateway, fuzz_upstream, client, "quick")


@pytest.mark.slow
def test_forwarding_thorough(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    run_forwarding(fuzz_gateway, fuzz_upstream, client, "thorough")


def test_a_compressed_body_is_415_naming_the_encoding_header(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    text = gzip.compress(b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}')
    headers = {**CLIENT, "content-type": "application/json", "content-encoding": "gzip"}
    r = client.post(f"{fuzz_gateway.url}/v1/chat/completions", content=text, headers=headers)
    assert r.status_code == 415, r.text
    err = openai_error(r)
    assert err["code"] == "unsupported_content_encoding" and "Content-Encoding" in err["message"]


def test_an_identity_content_encoding_is_forwarded_as_sent(
    fuzz_gateway: GatewayProcess, fuzz_upstream: RobustOpenAI, client: httpx.Client
) -> None:
    text = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    headers = {
        **CLIENT,
        "content-type": "application/json",
        "content-encoding": "identity",
        "x-request-id": "ident-1",
    }
    r = client.post(f"{fuzz_gateway.url}/v1/chat/completions", content=text, headers=headers)
    assert r.status_code == 200, r.text
    assert fuzz_upstream.raw_bodies["ident-1"] == text


@pytest.mark.parametrize("number", [b"1e309", b"-2.5E400", b"9" * 310])
def test_a_number_beyond_a_doubles_range_is_400_saying_so_not_invalid_json(
    fuzz_gateway: GatewayProcess, client: httpx.Client, number: bytes
) -> None:
    text = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "seed": ' + number + b"}"
    )
    r, _ = send(fuzz_gateway, client, "chat/completions", text)
    assert r.status_code == 400, r.text
    err = openai_error(r)
    assert err["code"] == "number_out_of_range" and "1.8e308" in err["message"]
