"""Hypothesis-generated bodies and headers over real sockets to a running ``pointsman serve``: malformed JSON,
wrong types, unknown fields, negative and absurd parameters, deeply nested bodies, invalid UTF-8, arbitrary raw
requests. Every answer is a 2xx (valid input) or an OpenAI-shaped 4xx, never a 5xx or a hang, and the server stays
healthy. Hand-picked hostile inputs (huge bodies and headers, slow headers) are in ``test_hostile_inputs.py``."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import GatewayProcess
from tests.reliability.conftest import FUZZ_BODY_LIMIT, FUZZ_BODY_TIMEOUT_S, FUZZ_HEADER_COUNT, SCOPED_KEY
from tests.reliability.probes import CLIENT, INFERENCE, MSG, auth_for, openai_error, post, raw_exchange

OTHER_POSTS = [
    "/v1/feedback",
    "/admin/routes",
    "/admin/routes/explain",
    "/admin/models",
    "/admin/backends",
    "/admin/keys",
    "/admin/routes/rollback",
    "/admin/routes/reorder",
]
CASES = {"quick": 60, "thorough": 600}

wide_int = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 123456789012345678901234567890]),
)
"""Integers around and far past 64 bits (parsers turn them into floats; the gateway must forward them as sent)."""
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    wide_int,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
absurd_int = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30), st.sampled_from([-1, 0, 2**63, 10**400])
)
absurd_num = st.one_of(
    absurd_int, st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -1e308])
)
model_name = st.one_of(
    st.sampled_from(["gpt-4o-mini", "fake-x", "text-embedding-3-small", "nope", "", "fake-\u00e9"]),
    st.text(max_size=300),
    json_value,
)
message = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "assistant", "tool", "bogus"]),
            "content": st.one_of(st.text(max_size=50), json_value),
        }
    ),
    json_value,
)


VALID_BODY: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSG, "prompt": "hi", "input": "hi"}
MUTATIONS: dict[str, Any] = {
    "model": model_name,
    "messages": st.one_of(st.lists(message, max_size=4), json_value),
    "prompt": st.one_of(st.text(max_size=50), json_value),
    "input": st.one_of(st.text(max_size=50), st.lists(st.text(max_size=10), max_size=3), json_value),
    "stream": st.one_of(st.booleans(), json_value),
    "max_tokens": absurd_int,
    "max_completion_tokens": absurd_int,
    "max_output_tokens": absurd_int,
    "n": absurd_int,
    "temperature": absurd_num,
    "top_p": absurd_num,
    "metadata": st.one_of(
        st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3), json_value
    ),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": json_value}), json_value),
    "user": json_value,
    "seed": wide_int,
}


@st.composite
def openai_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body (for every endpoint) with up to four fields replaced by wrong types or absurd values, some
    removed, and unknown fields added."""
    body = dict(VALID_BODY)
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=4, unique=True)):
        body[name] = draw(MUTATIONS[name])
    for name in draw(st.lists(st.sampled_from(sorted(VALID_BODY)), max_size=1)):
        body.pop(name, None)
    body.update(
        draw(
            st.dictionaries(
                st.text(min_size=1, max_size=12).filter(lambda k: k not in MUTATIONS), json_value, max_size=3
            )
        )
    )  # unknown fields
    return body


def encode(body: Any) -> bytes:
    """JSON text of ``body``: stdlib json, so integers past 64 bits are written as they are."""
    return json.dumps(body).encode()


def check_answer(resp: httpx.Response, what: str) -> None:
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:300]}"
    if resp.status_code >= 400:
        openai_error(resp)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def fuzz_settings(profile: str) -> Any:
    return settings(
        max_examples=CASES[profile],
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


# -- hypothesis: bodies ---------------------------------------------------------------------------------------------
def run_bodies(gw: GatewayProcess, client: httpx.Client, profile: str) -> None:
    seen: dict[int, int] = {}

    @fuzz_settings(profile)
    @given(path=st.sampled_from(INFERENCE), body=openai_bodies())
    def one(path: str, body: dict[str, Any]) -> None:
        r = post(client, gw.url + path, encode(body))
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        check_answer(r, f"POST {path} {body!r:.300}")

    one()
    print(
        f"\nfuzzed OpenAI bodies ({profile}): {sum(seen.values())} cases, statuses {dict(sorted(seen.items()))}"
    )
    assert seen.get(200), "no valid request got through: the generator is broken"


def test_fuzzed_openai_bodies_get_2xx_or_openai_shaped_4xx(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    run_bodies(fuzz_gateway, client, "quick")


@pytest.mark.slow
def test_fuzzed_openai_bodies_thorough(fuzz_gateway: GatewayProcess, client: httpx.Client) -> None:
    run_bodies(fuzz_gateway, client, "thorough")


def run_json_values(gw: GatewayProcess, client: httpx.Client, profile: str) -> None:
    @fuzz_settings(profile)
    @given(path=st.sampled_from(INFERENCE + OTHER_POSTS), body=json_value)
    def one(path: str, body: Any) -> None:
        check_answer(post(client, gw.url + path, encode(body), auth_for(path)), f"POST {path} {body!r:.300}")

    one()


def test_arbitrary_json_on_every_post_endpoint_is_2xx_or_openai_shaped_4xx(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    run_json_values(fuzz_gateway, client, "quick")


@pytest.mark.slow
def test_arbitrary_json_on_every_post_endpoint_thorough(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    run_json_values(fuzz_gateway, client, "thorough")


def run_raw_bytes(gw: GatewayProcess, client: httpx.Client, profile: str) -> None:
    @fuzz_settings(profile)
    @given(path=st.sampled_from(INFERENCE + OTHER_POSTS), raw=st.binary(max_size=2000))
    def one(path: str, raw: bytes) -> None:
        r = post(client, gw.url + path, raw, auth_for(path))
        check_answer(r, f"POST {path} {raw!r:.300}")
        assert r.status_code < 500

    one()


def test_arbitrary_bytes_including_invalid_utf8_get_openai_shaped_4xx(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    run_raw_bytes(fuzz_gateway, client, "quick")


@pytest.mark.slow
def test_arbitrary_bytes_thorough(fuzz_gateway: GatewayProcess, client: httpx.Client) -> None:
    run_raw_bytes(fuzz_gateway, client, "thorough")


# -- hypothesis: headers ------------------------------------------------------------------------------------------------
# what an HTTP client lets through (h11: tab, visible ASCII, obs-text); raw bytes get their own test below
header_value = st.binary(max_size=300).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128).strip()
)
header_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=30)


def run_headers(gw: GatewayProcess, client: httpx.Client, profile: str) -> None:
    @fuzz_settings(profile)
    @given(
        path=st.sampled_from([*INFERENCE, "/v1/models", "/admin/status"]),
        auth=st.one_of(
            header_value,
            st.sampled_from(
                [f"Bearer {CLIENT_KEY}", f"Bearer {ADMIN_KEY}", f"Bearer {SCOPED_KEY}", "Bearer", "Basic abc"]
            ).map(str.encode),
        ),
        named=st.fixed_dictionaries(
            {},
            optional={
                h: header_value
                for h in (
                    "x-request-id",
                    "x-pointsman-task",
                    "x-pointsman-tags",
                    "x-pointsman-sticky",
                    "content-type",
                    "api-key",
                    "accept",
                    "origin",
                )
            },
        ),
        extra=st.dictionaries(header_name, header_value, max_size=5),
    )
    def one(path: str, auth: bytes, named: dict[str, bytes], extra: dict[str, bytes]) -> None:
        headers = {**extra, **named, "authorization": auth}
        body = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "prompt": "hi", "input": "hi"})
        method = "GET" if not path.startswith("/v1/") or path == "/v1/models" else "POST"
        r = client.request(method, gw.url + path, headers=headers, content=body if method == "POST" else None)
        check_answer(r, f"{method} {path} {headers!r:.400}")
        rid = r.headers.get("x-request-id", "")
        assert rid and all(c.isalnum() or c in "._:-" for c in rid), rid  # echoed only when safe

    one()


def test_fuzzed_headers_get_2xx_or_openai_shaped_4xx_and_safe_request_ids(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    run_headers(fuzz_gateway, client, "quick")


@pytest.mark.slow
def test_fuzzed_headers_thorough(fuzz_gateway: GatewayProcess, client: httpx.Client) -> None:
    run_headers(fuzz_gateway, client, "thorough")


def parse_raw_response(raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    return status, headers, body[: int(headers.get(b"content-length", len(body)))]


def run_raw_requests(gw: GatewayProcess, profile: str) -> None:
    @fuzz_settings(profile)
    @given(
        method=st.one_of(
            st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"HEAD"]),
            st.binary(min_size=1, max_size=10),
        ),
        target=st.one_of(
            st.sampled_from([b"/v1/chat/completions", b"/healthz", b"/admin/status", b"/v1/models"]),
            st.binary(max_size=60),
        ),
        headers=st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=60)), max_size=5),
    )
    def one(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        lines = [
            method + b" " + target + b" HTTP/1.1",
            b"Host: x",
            b"Connection: close",
            *(k + b": " + v for k, v in headers),
        ]
        raw = raw_exchange(gw.port, b"\r\n".join(lines) + b"\r\n\r\n", timeout=10)
        assert raw.startswith(b"HTTP/1.1 "), raw[:200]  # answered, not dropped
        status, resp_headers, body = parse_raw_response(raw)
        assert status < 500, raw[:400]
        if status >= 400 and method != b"HEAD":
            assert resp_headers.get(b"content-type", b"").startswith(b"application/json"), raw[:400]
            err = orjson.loads(body)["error"]
            assert isinstance(err["message"], str) and isinstance(err["type"], str), raw[:400]

    one()


def test_raw_requests_with_arbitrary_bytes_are_answered_in_the_openai_shape(
    fuzz_gateway: GatewayProcess,
) -> None:
    run_raw_requests(fuzz_gateway, "quick")


@pytest.mark.slow
def test_raw_requests_thorough(fuzz_gateway: GatewayProcess) -> None:
    run_raw_requests(fuzz_gateway, "thorough")


# -- hypothesis: deep nesting --------------------------------------------------------------------------------------------
MAX_DEPTH = 250  # wire.json_object.MAX_DEPTH, as documented


@st.composite
def deep_values(draw: st.DrawFn) -> tuple[bytes, int]:
    """JSON text of arrays and objects nested 1 to 1,100 levels (most around the limit), and its depth."""
    depth = draw(st.one_of(st.integers(1, 1100), st.integers(MAX_DEPTH - 4, MAX_DEPTH + 6)))
    opens = draw(st.lists(st.sampled_from([b"[", b'{"k":']), min_size=depth, max_size=depth))
    leaf = encode(draw(json_leaf))
    text = leaf
    for o in reversed(opens):
        text = o + text + (b"]" if o == b"[" else b"}")
    return text, depth


DEEP_TEMPLATES = {
    **{
        p: (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "input": "hi", '
            b'"prompt": "hi", "x": %s}',
            1,
        )
        for p in INFERENCE
    },
    "/admin/routes": (b'{"name": "deep-%%d", "match": {"model": "no-such-model"}, "defaults": {"x": %s}}', 2),
    "/admin/routes/explain": (b'{"model": "gpt-4o-mini", "metadata": {"x": %s}}', 2),
    "/v1/feedback": (b'{"request_id": "x", "metric": "m", "value": %s}', 1),
}
"""A body per path with a place for a deep value, and the levels above that place."""


def run_deep_nesting(gw: GatewayProcess, client: httpx.Client, profile: str) -> None:
    seen: dict[str, int] = {}
    names = iter(range(10**9))

    @fuzz_settings(profile)
    @given(path=st.sampled_from(sorted(DEEP_TEMPLATES)), deep=deep_values())
    def one(path: str, deep: tuple[bytes, int]) -> None:
        template, above = DEEP_TEMPLATES[path]
        body = (template.replace(b"%%d", b"%d" % next(names))) % deep[0]
        depth = above + deep[1]
        r = post(client, gw.url + path, body, auth_for(path))
        where = f"POST {path}, {depth} levels: {r.status_code} {r.text[:200]}"
        check_answer(r, where)
        seen[f"{'over' if depth > MAX_DEPTH else 'within'}:{r.status_code}"] = (
            seen.get(f"{'over' if depth > MAX_DEPTH else 'within'}:{r.status_code}", 0) + 1
        )
        if depth > MAX_DEPTH:
            assert r.status_code == 400, where
            assert openai_error(r)["code"] in ("nesting_too_deep", "invalid_json"), where
        elif path in INFERENCE:
            assert r.status_code == 200, where  # accepted bodies are forwarded

    one()
    print(f"\ndeep nesting ({profile}): {dict(sorted(seen.items()))}")


def test_deep_nesting_is_forwarded_up_to_the_limit_and_400_past_it(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    run_deep_nesting(fuzz_gateway, client, "quick")


@pytest.mark.slow
def test_deep_nesting_thorough(fuzz_gateway: GatewayProcess, client: httpx.Client) -> None:
    run_deep_nesting(fuzz_gateway, client, "thorough")


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


# -- hypothesis: framing (declared lengths, header counts, Expect) ------------------------------------------------------
@st.composite
def framed_requests(draw: st.DrawFn, long_bodies: bool) -> tuple[str, bytes, int, str]:
    """A raw POST whose declared ``Content-Length`` is exact, short, over the limit or absurd (or, with
    ``long_bodies``, longer than what is sent: the rest never comes), with up to twice ``max_header_count`` tiny
    header fields and maybe ``Expect: 100-continue``; returns (path, request, header fields, declared kind)."""
    path = draw(st.sampled_from(INFERENCE + OTHER_POSTS))
    body = draw(st.one_of(st.just(orjson.dumps(VALID_BODY)), st.builds(encode, openai_bodies())))
    kinds = ["exact", "short", "over_limit", "absurd"] + (["long"] if long_bodies else [])
    kind = draw(st.sampled_from(kinds))
    declared = {
        "exact": lambda: len(body),
        "short": lambda: draw(st.integers(0, max(0, len(body) - 1))),
        "over_limit": lambda: draw(st.integers(FUZZ_BODY_LIMIT + 1, 4 * FUZZ_BODY_LIMIT)),
        "absurd": lambda: draw(st.integers(4 * FUZZ_BODY_LIMIT, 10**30)),
        "long": lambda: len(body) + draw(st.integers(1, 1000)),
    }[kind]()
    extra = [b"x-h%d: 1" % i for i in range(draw(st.integers(0, 2 * FUZZ_HEADER_COUNT)))]
    if draw(st.booleans()):
        extra.append(b"Expect: 100-continue")
    key = (ADMIN_KEY if path.startswith("/admin") else CLIENT_KEY).encode()
    lines = [
        b"POST " + path.encode() + b" HTTP/1.1",
        b"Host: x",
        b"Authorization: Bearer " + key,
        b"Content-Type: application/json",
        b"Content-Length: %d" % declared,
        *extra,
    ]
    return path, b"\r\n".join(lines) + b"\r\n\r\n" + body, 4 + len(extra), kind


def first_response(s: socket.socket, timeout: float) -> bytes:
    """What arrives on ``s`` up to the end of the first final response (after any ``100 Continue``), or until the
    server closes the connection or ``timeout`` passes."""
    s.settimeout(timeout)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
            head, sep, rest = out.rpartition(CONTINUE)[2].partition(b"\r\n\r\n")
            if not sep:
                continue
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if (length is not None and len(rest) >= int(length.group(1))) or rest.endswith(b"\r\n0\r\n\r\n"):
                break
    except OSError:
        pass
    return out


def run_framing(gw: GatewayProcess, profile: str) -> None:
    seen: dict[str, int] = {}

    @fuzz_settings(profile)
    @given(framed=framed_requests(long_bodies=profile == "thorough"))
    def one(framed: tuple[str, bytes, int, str]) -> None:
        path, raw, fields, kind = framed
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
            try:
                s.sendall(raw)
            except OSError:
                pass  # answered and closed before everything was sent
            out = first_response(s, FUZZ_BODY_TIMEOUT_S + 5)
        took = time.monotonic() - t0
        where = f"{kind}, {fields} fields: {raw[:200]!r} -> {out[:300]!r}"
        final = out.rpartition(CONTINUE)[2]
        assert final.startswith(b"HTTP/1.1 "), where  # answered, never dropped or left hanging
        status, _, body = parse_raw_response(final)
        seen[f"{kind}:{status}"] = seen.get(f"{kind}:{status}", 0) + 1
        assert status < 500, where
        assert orjson.loads(body)["error"]["message"] if status >= 400 else True, where
        if fields > FUZZ_HEADER_COUNT:  # (a length httptools cannot represent is refused as it is parsed)
            assert status == 431 or (kind == "absurd" and status == 400), where
        elif kind in ("over_limit", "absurd"):
            assert status in (400, 413), where  # 400: a length httptools itself cannot represent
            assert b"100 Continue" not in out, where  # refused before the upload was invited
        elif kind == "long":
            assert status == 408, where
            assert took < FUZZ_BODY_TIMEOUT_S + 3, where
        assert took < FUZZ_BODY_TIMEOUT_S + 3, where

    one()
    print(f"\nframing ({profile}): {dict(sorted(seen.items()))}")


def test_declared_lengths_and_header_counts_are_answered_at_once_and_never_5xx(
    fuzz_gateway: GatewayProcess,
) -> None:
    run_framing(fuzz_gateway, "quick")


@pytest.mark.slow
def test_declared_lengths_and_header_counts_thorough(fuzz_gateway: GatewayProcess) -> None:
    run_framing(fuzz_gateway, "thorough")


# -- hand-picked hostile inputs -------------------------------------------------------------------------------------------
def test_gateway_is_healthy_after_the_fuzzing(fuzz_gateway: GatewayProcess, client: httpx.Client) -> None:
    gw = fuzz_gateway
    assert gw.proc is not None and gw.proc.poll() is None
    assert client.get(gw.url + "/healthz").status_code == 200
    assert client.get(gw.url + "/readyz").status_code == 200
    r = client.post(
        gw.url + "/v1/chat/completions", headers=CLIENT, json={"model": "gpt-4o-mini", "messages": MSG}
    )
    assert r.status_code == 200
    time.sleep(0.2)
    log = gw.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]
