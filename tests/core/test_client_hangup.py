"""A client that hangs up on a non-streamed request: the upstream call is cancelled, not paid for until timeout.

Seen by an outside probe: 20 clients that left after 0.3 s kept 20 upstream calls in flight until the 15 s
timeout, recorded as 504. Now the gateway notices the disconnect, closes the upstream connection (which stops
generation) and records 499 ``cancelled`` (``client_disconnected``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.accounting.observe import ledger_rows, wait_for
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def slow_gateway(upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    upstream.delay = 5.0
    cfg = basic_config(upstream.url)
    cfg["backends"]["up"]["timeout_s"] = 15  # type: ignore[index]
    with RunningGateway(cfg) as gw:
        yield gw


def _leave_after(url: str, seconds: float) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/chat/completions", json=BODY, headers=AUTH, timeout=httpx.Timeout(5, read=seconds))


def test_clients_that_hang_up_cancel_their_upstream_calls(
    slow_gateway: RunningGateway, upstream: FakeOpenAI
) -> None:
    t0 = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda _: _leave_after(slow_gateway.base_url, 0.3), range(20)))
    wait_for(lambda: upstream.abandoned == 20, timeout=3)
    assert upstream.held == 0
    assert time.monotonic() - t0 < 3  # not held until the 5 s answer, nor the 15 s timeout
    rows = wait_for(lambda: (r := ledger_rows(slow_gateway._data)) and len(r) == 20 and r, timeout=5)
    assert {(r["status"], r["outcome"], r["error_type"]) for r in rows} == {
        (499, "cancelled", "client_disconnected")
    }
    assert all(r["latency_s"] < 2 for r in rows)


def test_a_slow_answer_still_reaches_a_client_that_waits(upstream: FakeOpenAI) -> None:
    upstream.delay = 0.3  # past the moment the gateway starts watching the connection
    with RunningGateway(basic_config(upstream.url)) as gw, httpx.Client(headers=AUTH, timeout=10) as c:
        for _ in range(3):  # the same connection, reused after each watched answer
            r = c.post(gw.base_url + "/chat/completions", json=BODY)
            assert r.status_code == 200
            assert r.json()["choices"][0]["message"]["content"]
        rows = wait_for(lambda: (r := ledger_rows(gw._data)) and len(r) == 3 and r)
    assert {(r["status"], r["outcome"]) for r in rows} == {(200, "ok")}
    assert upstream.abandoned == 0


def test_a_stream_client_that_hangs_up_before_the_first_byte_cancels_the_upstream_call(
    slow_gateway: RunningGateway, upstream: FakeOpenAI
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            slow_gateway.base_url + "/chat/completions",
            json={**BODY, "stream": True},
            headers=AUTH,
            timeout=httpx.Timeout(5, read=0.3),
        )
    wait_for(lambda: upstream.abandoned == 1, timeout=3)
    rows = wait_for(lambda: ledger_rows(slow_gateway._data))
    assert [(r["status"], r["outcome"], r["error_type"], r["stream"]) for r in rows] == [
        (499, "cancelled", "client_disconnected", 1)
    ]
