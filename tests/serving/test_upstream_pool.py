"""The upstream client's connections, seen from the upstream: pooled and reused, bounded by ``max_connections``,
never reused when the upstream closes them or says it will, and every HTTP/1.1 framing read whole."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serving.config import OpenAIBackendConfig, VLLMBackendConfig
from serving.errors import UpstreamTimeout
from serving.http_client import KEEPALIVE_S, HttpClient, Timeouts
from serving.http_request import header_lines
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.raw_http import RawUpstream, answer
from tests.gateway_runner import RunningGateway

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _chat(gw: RunningGateway) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json=BODY, headers=AUTH, timeout=10)


@pytest.fixture
def raw() -> Iterator[RawUpstream]:
    up = RawUpstream()
    yield up
    up.stop()


def _gateway(url: str, **backend: object) -> RunningGateway:
    cfg = basic_config(url, models={"gpt-4o-mini": {"backend": "up"}})  # no glob: no model-list call
    cfg["backends"]["up"].update(backend)  # type: ignore[index]
    return RunningGateway(cfg)


def test_sequential_requests_reuse_one_upstream_connection(raw: RawUpstream) -> None:
    raw.start()
    with _gateway(raw.url) as gw:
        assert [_chat(gw).status_code for _ in range(10)] == [200] * 10
    assert (raw.requests, raw.connections) == (10, 1)


def test_a_connection_idle_past_the_backends_idle_timeout_is_not_reused(raw: RawUpstream) -> None:
    raw.start()
    with _gateway(raw.url, idle_timeout_s=0.3) as gw:
        assert _chat(gw).status_code == 200
        time.sleep(0.5)  # idle past 0.3 s: closed instead of reused
        assert [_chat(gw).status_code for _ in range(2)] == [200, 200]  # (the second reuses the new one)
    assert (raw.requests, raw.connections) == (3, 2)


def test_a_vllm_backend_drops_idle_connections_before_vllm_does() -> None:
    # vLLM's server closes a connection idle 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE): a request sent on it as it closes
    # fails, so the gateway stops reusing one sooner
    vllm = VLLMBackendConfig(type="vllm", endpoints=["http://vllm:8000/v1"])
    assert vllm.idle_timeout_s < 5
    assert OpenAIBackendConfig(type="openai").idle_timeout_s == KEEPALIVE_S


def test_concurrent_calls_use_at_most_max_connections(upstream: FakeOpenAI) -> None:
    upstream.delay = 0.2
    with _gateway(upstream.url, max_connections=2) as gw, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _chat(gw).status_code, range(8)))
    assert statuses == [200] * 8
    assert len({seen.peer for seen in upstream.requests}) == 2


def test_an_answer_ended_by_closing_the_connection_is_read_whole(raw: RawUpstream) -> None:
    raw.reply, raw.close_after_reply = answer(length=False, close=True), True
    raw.start()
    with _gateway(raw.url) as gw:
        replies = [_chat(gw) for _ in range(3)]
    assert [r.json()["choices"][0]["message"]["content"] for r in replies] == ["raw answer"] * 3
    assert raw.connections == 3


def test_an_upstream_that_closes_after_each_answer_gets_a_new_connection_each_time(raw: RawUpstream) -> None:
    raw.reply, raw.close_after_reply = answer(close=True), True
    raw.start()
    with _gateway(raw.url) as gw:
        assert [_chat(gw).status_code for _ in range(3)] == [200] * 3
    assert (raw.requests, raw.connections) == (3, 3)


def test_a_pooled_connection_the_upstream_dropped_is_not_reused(raw: RawUpstream) -> None:
    raw.idle_close_s = 0.05
    raw.start()
    with _gateway(raw.url) as gw:
        first = _chat(gw)
        time.sleep(0.3)  # the upstream drops the idle connection meanwhile
        second = _chat(gw)
    assert (first.status_code, second.status_code) == (200, 200)
    assert raw.connections == 2


def test_an_interim_100_continue_before_the_answer_is_skipped(raw: RawUpstream) -> None:
    raw.reply = answer(interim=True)
    raw.start()
    with _gateway(raw.url) as gw:
        replies = [_chat(gw) for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200]
    assert replies[1].json()["choices"][0]["message"]["content"] == "raw answer"
    assert raw.connections == 1


async def test_a_shorter_timeout_on_a_pooled_connection_is_kept(raw: RawUpstream) -> None:
    """The connection's one timer was armed for the first call's long timeout; the second call's short one
    still ends it on time."""
    raw.answered = 1
    raw.start()
    client = HttpClient("up", per_host=1, total=1)
    headers = header_lines({"content-type": "application/json"})
    first = await client.request(b"POST", raw.url + "/chat/completions", headers, b"{}", Timeouts(30, 5, 30))
    assert first.status == 200 and await first.read() and not await first.read()
    first.release()
    t0 = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await client.request(b"POST", raw.url + "/chat/completions", headers, b"{}", Timeouts(0.3, 0.3, 0.3))
    assert time.monotonic() - t0 < 1.5
    assert raw.connections == 1
    await client.close()
