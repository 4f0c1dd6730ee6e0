"""Hand-picked hostile inputs over real sockets to a running ``pointsman serve``: bodies nested 100,000 deep,
malformed and oversized bodies (413 over ``server.max_body_bytes``, chunked too), oversized, countless, dripped
and slow headers (431, 408). Each is answered in the OpenAI error shape, never a 5xx or a hang. The generated
inputs are in ``test_fuzz_inputs.py``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.gateway_runner import GatewayProcess
from tests.reliability.conftest import FUZZ_BODY_LIMIT
from tests.reliability.probes import INFERENCE, auth_for, openai_error, post, raw_exchange


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.mark.parametrize("path", INFERENCE + ["/v1/feedback", "/admin/routes", "/admin/routes/explain"])
def test_100k_deep_nesting_is_400(fuzz_gateway: GatewayProcess, client: httpx.Client, path: str) -> None:
    deep = b'{"model": "gpt-4o-mini", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert len(deep) < FUZZ_BODY_LIMIT
    r = post(client, fuzz_gateway.url + path, deep, auth_for(path))
    assert r.status_code == 400, r.text[:300]
    openai_error(r)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}',  # invalid UTF-8
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud800"}]}',  # lone surrogate
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        b'{"model": "gpt-4o-mini", "messages": [], "max_tokens": 1e400}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 100000000000000000000}',
        b'{"model": "gpt-4o-mini\\n", "messages": [{"role": "user", "content": "x"}]}',  # control character
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]',  # truncated
        b"",
        b"null",
        b"\x00" * 64,
    ],
    ids=[
        "invalid-utf8",
        "lone-surrogate",
        "nan",
        "huge-float",
        "negative",
        "huge-int",
        "control-char",
        "truncated",
        "empty",
        "null",
        "nul-bytes",
    ],
)
def test_malformed_chat_body_is_an_openai_shaped_400(
    fuzz_gateway: GatewayProcess, client: httpx.Client, raw: bytes
) -> None:
    r = post(client, fuzz_gateway.url + "/v1/chat/completions", raw)
    assert r.status_code == 400, r.text
    openai_error(r)


@pytest.mark.parametrize("path", INFERENCE + ["/v1/feedback", "/admin/routes", "/admin/keys"])
def test_body_over_max_body_bytes_is_413(
    fuzz_gateway: GatewayProcess, client: httpx.Client, path: str
) -> None:
    big = b'{"model": "gpt-4o-mini", "pad": "' + b"x" * FUZZ_BODY_LIMIT + b'"}'
    r = post(client, fuzz_gateway.url + path, big, auth_for(path))
    assert r.status_code == 413, r.text[:300]
    assert openai_error(r)["code"] == "body_too_large"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/admin/routes"])
def test_chunked_body_over_max_body_bytes_is_413(
    fuzz_gateway: GatewayProcess, client: httpx.Client, path: str
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(2 * FUZZ_BODY_LIMIT // 8192):
            yield b"x" * 8192

    with client.stream("POST", fuzz_gateway.url + path, content=chunks(), headers=auth_for(path)) as r:
        r.read()
    assert r.status_code == 413
    assert openai_error(r)["code"] == "body_too_large"


def test_oversized_header_is_431_and_the_connection_closed(fuzz_gateway: GatewayProcess) -> None:
    out = raw_exchange(
        fuzz_gateway.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    )
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), out[:200]
    assert orjson.loads(body)["error"]["code"] == "headers_too_large"


def test_thousands_of_headers_are_431(fuzz_gateway: GatewayProcess) -> None:
    many = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(10_000))
    out = raw_exchange(fuzz_gateway.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431"), out[:200]


def test_header_dripped_forever_is_cut_off(fuzz_gateway: GatewayProcess) -> None:
    """A client that never finishes its headers holds nothing: past max_header_bytes it gets 431."""
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=15) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        sent = 0
        try:
            while sent < 2_000_000:
                s.sendall(b"a" * 16384)
                sent += 16384
        except OSError:
            pass
        out = s.recv(65536)
    assert out.startswith(b"HTTP/1.1 431"), out[:200]


def test_headers_sent_too_slowly_get_408(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=15) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        out = b""
        try:
            for _ in range(20):  # a header line every half second: never done
                s.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.5)
        except OSError:
            pass
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
    assert out.startswith(b"HTTP/1.1 408"), out[:200]
    assert time.monotonic() - t0 < 8


def test_normal_request_with_large_body_is_not_mistaken_for_a_large_header(
    fuzz_gateway: GatewayProcess, client: httpx.Client
) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 150_000}]})
    r = post(client, fuzz_gateway.url + "/v1/chat/completions", body)
    assert r.status_code == 200, r.text[:300]
