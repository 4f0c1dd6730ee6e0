"""What a client can make the gateway hold or spend before its request is even read, over raw sockets to a
running ``pointsman serve``: the number of header fields (431 past ``server.max_header_count``), a declared
``Content-Length`` over ``server.max_body_bytes`` (413 before any of the body is read: no ``100 Continue``, no
waiting for a body that never comes) and a body that trickles in (408 past ``server.body_timeout_s``)."""

from __future__ import annotations

import http.client
import socket
import time

import orjson
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import GatewayProcess
from tests.reliability.conftest import FUZZ_BODY_LIMIT, FUZZ_BODY_TIMEOUT_S, FUZZ_HEADER_COUNT
from tests.reliability.probes import MSG

INFERENCE = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "prompt": "hi", "input": "hi"})


HEAD_FIELDS = 4
"""Header fields ``head`` sends besides ``extra``."""


def head(path: str, length: int, *extra: bytes) -> bytes:
    key = ADMIN_KEY if path.startswith("/admin") else CLIENT_KEY
    lines = [
        b"POST " + path.encode() + b" HTTP/1.1",
        b"Host: x",
        b"Authorization: Bearer " + key.encode(),
        b"Content-Type: application/json",
        b"Content-Length: %d" % length,
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def read_answer(s: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection or ``timeout`` passes."""
    s.settimeout(timeout)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
            if b"\r\n\r\n" in out and not out.startswith(b"HTTP/1.1 100"):
                status_head, _, rest = out.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(v)
                        for k, _, v in (ln.partition(b":") for ln in status_head.split(b"\r\n")[1:])
                        if k.strip().lower() == b"content-length"
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    break
    except OSError:
        pass
    return out


def status_and_code(raw: bytes) -> tuple[int, str | None]:
    status_head, _, body = raw.partition(b"\r\n\r\n")
    status = int(status_head.split(b" ")[1])
    code = orjson.loads(body)["error"]["code"] if status >= 400 else None
    return status, code


# -- header count -----------------------------------------------------------------------------------------------
def test_ten_thousand_tiny_headers_within_the_byte_limit_are_431(fuzz_gateway: GatewayProcess) -> None:
    many = b"x: 1\r\n" * 10_000  # 60 KB: under max_header_bytes (64 KiB), far over the header count
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        s.sendall(head("/v1/chat/completions", len(BODY), many.rstrip(b"\r\n")) + BODY)
        out = read_answer(s, 10)
    assert out.startswith(b"HTTP/1.1 431"), out[:200]
    assert status_and_code(out) == (431, "headers_too_large")


def test_headers_up_to_max_header_count_are_served(fuzz_gateway: GatewayProcess) -> None:
    extra = b"\r\n".join(b"x-extra-%d: 1" % i for i in range(FUZZ_HEADER_COUNT - HEAD_FIELDS))
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        s.sendall(head("/v1/chat/completions", len(BODY), extra) + BODY)
        out = read_answer(s, 10)
    assert out.startswith(b"HTTP/1.1 200"), out[:300]


def test_one_header_past_max_header_count_is_431(fuzz_gateway: GatewayProcess) -> None:
    extra = b"\r\n".join(b"x-extra-%d: 1" % i for i in range(FUZZ_HEADER_COUNT - HEAD_FIELDS + 1))
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        s.sendall(head("/v1/chat/completions", len(BODY), extra) + BODY)
        out = read_answer(s, 10)
    assert status_and_code(out) == (431, "headers_too_large")


# -- declared length ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", INFERENCE + ["/v1/feedback"])
def test_declared_length_over_the_limit_is_413_without_100_continue(
    fuzz_gateway: GatewayProcess, path: str
) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        s.sendall(head(path, FUZZ_BODY_LIMIT + 1, b"Expect: 100-continue"))
        out = read_answer(s, 5)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]  # never "100 Continue": the upload is not invited
    assert status_and_code(out) == (413, "body_too_large")


@pytest.mark.parametrize("path", INFERENCE)
def test_huge_declared_length_with_a_short_body_is_answered_at_once(
    fuzz_gateway: GatewayProcess, path: str
) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(head(path, 10**15) + BODY)
        out = read_answer(s, 5)
        took = time.monotonic() - t0
    assert status_and_code(out) == (413, "body_too_large")
    assert took < 2, took


# -- slow bodies -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/feedback", "/admin/routes"])
def test_body_trickled_past_body_timeout_gets_408(fuzz_gateway: GatewayProcess, path: str) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(head(path, len(BODY)))
        out = b""
        try:
            for b in BODY:  # one byte every 0.2 s: the whole body would take far longer than the deadline
                s.sendall(bytes([b]))
                time.sleep(0.2)
                if time.monotonic() - t0 > FUZZ_BODY_TIMEOUT_S + 3:
                    break
        except OSError:
            pass
        out = read_answer(s, 5)
        took = time.monotonic() - t0
    assert out.startswith(b"HTTP/1.1 408"), out[:200]
    assert status_and_code(out) == (408, "request_timeout")
    assert FUZZ_BODY_TIMEOUT_S - 0.5 < took < FUZZ_BODY_TIMEOUT_S + 3, took


def test_declared_body_that_never_comes_gets_408(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        s.sendall(head("/v1/chat/completions", 1000) + b'{"model": ')
        out = read_answer(s, FUZZ_BODY_TIMEOUT_S + 5)
    assert status_and_code(out) == (408, "request_timeout")


def test_body_sent_in_pieces_within_the_deadline_is_served(fuzz_gateway: GatewayProcess) -> None:
    pieces = [BODY[i : i + 20] for i in range(0, len(BODY), 20)]
    pause = (FUZZ_BODY_TIMEOUT_S / 3) / len(pieces)
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        s.sendall(head("/v1/chat/completions", len(BODY)))
        for p in pieces:
            s.sendall(p)
            time.sleep(pause)
        out = read_answer(s, 10)
    assert out.startswith(b"HTTP/1.1 200"), out[:300]


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/feedback"])
@pytest.mark.parametrize("size", [FUZZ_BODY_LIMIT + 1, 3 * 1024 * 1024])
def test_a_client_sending_a_whole_body_over_the_limit_reads_the_413(
    fuzz_gateway: GatewayProcess, size: int, path: str
) -> None:
    """``http.client`` (no ``Expect: 100-continue``) sends all of the body before it reads the answer: the
    connection must not be reset under it while it is still sending."""
    body = b'{"model": "gpt-4o-mini", "input": "' + b"x" * size + b'"}'
    conn = http.client.HTTPConnection("127.0.0.1", fuzz_gateway.port, timeout=10)
    try:
        conn.request(
            "POST",
            path,
            body,
            {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
        )
        r = conn.getresponse()
        assert r.status == 413
        assert orjson.loads(r.read())["error"]["code"] == "body_too_large"
    finally:
        conn.close()
