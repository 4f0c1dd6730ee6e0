"""HTTP/1.1 as the gateway's own server protocol speaks it (``gateway/http_server.py``), over raw sockets to a running
``pointsman serve``: keep-alive, pipelined requests answered in order, HTTP/1.0, ``Expect: 100-continue``, chunked
request bodies, ``HEAD``, request targets (percent-encoded, invalid), and idle connections closed after the
keep-alive timeout."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import orjson

from gateway.config import ServerConfig
from tests.conftest import CLIENT_KEY
from tests.gateway_runner import GatewayProcess
from tests.reliability.probes import MSG

BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG})


def chat(rid: bytes, *extra: bytes, version: bytes = b"1.1", body: bytes = BODY) -> bytes:
    lines = [
        b"POST /v1/chat/completions HTTP/" + version,
        b"Host: x",
        b"Authorization: Bearer " + CLIENT_KEY.encode(),
        b"Content-Type: application/json",
        b"X-Request-Id: " + rid,
        *extra,
    ]
    if not any(e.lower().startswith(b"transfer-encoding") for e in extra):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def read_responses(
    s: socket.socket, n: int, timeout: float = 10
) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """``n`` final responses (with content-length framing; interim 1xx ones skipped) read from ``s``."""
    s.settimeout(timeout)
    buf = b""
    out: list[tuple[int, dict[bytes, bytes], bytes]] = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError(f"closed after {len(out)} responses: {buf[:200]!r}")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
        if 100 <= status < 200:
            continue
        length = int(headers.get(b"content-length", b"0"))
        while len(buf) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed mid-body")
            buf += chunk
        out.append((status, headers, buf[:length]))
        buf = buf[length:]
    return out


def closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_requests_on_one_connection_are_answered_and_it_stays_open(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        for i in range(3):
            s.sendall(chat(b"keep-%d" % i))
            [(status, headers, _)] = read_responses(s, 1)
            assert (status, headers[b"x-request-id"]) == (200, b"keep-%d" % i)
            assert b"connection" not in headers


def test_pipelined_requests_are_answered_in_order(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        s.sendall(
            chat(b"pipe-1")
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-2\r\n\r\n"
            + chat(b"pipe-3")
        )
        answers = read_responses(s, 3)
    assert [(status, h[b"x-request-id"]) for status, h, _ in answers] == [
        (200, b"pipe-1"),
        (200, b"pipe-2"),
        (200, b"pipe-3"),
    ]
    assert orjson.loads(answers[1][2]) == {"status": "ok"}


def test_an_http_1_0_request_is_answered_then_the_connection_closes(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        s.sendall(chat(b"old", version=b"1.0"))
        [(status, headers, body)] = read_responses(s, 1)
        assert status == 200 and orjson.loads(body)["object"] == "chat.completion"
        assert headers[b"connection"] == b"close"
        assert closed_within(s, 5)


def test_expect_100_continue_gets_continue_before_the_answer(fuzz_gateway: GatewayProcess) -> None:
    head, _, body = chat(b"cont", b"Expect: 100-continue").partition(b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port), timeout=10) as s:
        s.sendall(head + b"\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        [(status, headers, _)] = read_responses(s, 1)
    assert (status, headers[b"x-request-id"]) == (200, b"cont")


def test_a_chunked_request_body_is_read_whole(fuzz_gateway: GatewayProcess) -> None:
    pieces = [BODY[:10], BODY[10:25], BODY[25:]]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        s.sendall(chat(b"chunked", b"Transfer-Encoding: chunked", body=chunked))
        [(status, _, body)] = read_responses(s, 1)
    assert status == 200 and orjson.loads(body)["object"] == "chat.completion"


def test_head_is_answered_without_a_body(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        raw = b""
        while raw.count(b"HTTP/1.1 ") < 2 or not raw.endswith(b'{"status":"ok"}'):
            chunk = s.recv(65536)
            assert chunk, raw
            raw += chunk
    first, second = (m.start() for m in re.finditer(rb"HTTP/1\.1 ", raw))
    head_answer = raw[first:second]
    assert head_answer.endswith(b"\r\n\r\n")  # the head only: the next answer starts right after it


def test_an_invalid_request_target_gets_an_openai_shaped_400(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        s.sendall(b"GET http://[::1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        [(status, headers, body)] = read_responses(s, 1)
    assert status == 400 and headers[b"connection"] == b"close"
    assert orjson.loads(body)["error"]["code"] == "invalid_http_request"


def test_a_percent_encoded_path_without_a_query_is_routed(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        s.sendall(
            b"GET /v1/models/a%20b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + CLIENT_KEY.encode()
            + b"\r\n\r\n"
        )
        [(status, _, body)] = read_responses(s, 1)
    assert status == 404
    assert orjson.loads(body)["error"]["message"].startswith("The model `a b` does not exist")


def test_an_absolute_form_target_is_answered_by_its_path(fuzz_gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", fuzz_gateway.port)) as s:
        s.sendall(b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\nGET http://x HTTP/1.1\r\nHost: x\r\n\r\n")
        (status, _, body), (root, _, _) = read_responses(s, 2)
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    assert root != 400  # no path: the root's answer


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(tmp_path: Path) -> None:
    cfg = {"server": {"data_dir": str(tmp_path / "data"), "keep_alive_timeout_s": 1.5}}
    gw = GatewayProcess(cfg, tmp_path).start()
    try:
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_responses(s, 1)[0][0] == 200
            t0 = time.monotonic()
            assert not closed_within(s, 0.75)
            assert closed_within(s, 5)
            assert 1.2 < time.monotonic() - t0 < 4
    finally:
        gw.stop()


def test_the_default_keep_alive_outlasts_the_idle_expiry_of_clients_and_load_balancers() -> None:
    # a client that reuses an idle connection as the gateway closes it gets a reset and loses its request: the
    # gateway must close idle connections after the clients do (httpx, the OpenAI SDKs: 5 s; AWS ALB: 60 s)
    assert ServerConfig().keep_alive_timeout_s > max(httpx.Limits().keepalive_expiry or 0, 60)
