"""Streaming relay: bytes as they arrive, usage on the side, disconnects and mid-stream failures."""

from __future__ import annotations

import json
import time

import httpx
import openai

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

MSG = [{"role": "user", "content": "hi"}]


def test_stream_relays_all_content(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from primary (gpt-4o-mini)"


def test_stream_includes_usage_when_client_asks(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11


def test_stream_drops_usage_chunk_when_client_did_not_ask(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert all(c.choices for c in chunks)
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_async_stream_relays_content(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Hello from primary")


def test_first_chunk_reaches_client_before_upstream_finishes(
    gateway: RunningGateway, upstream: FakeOpenAI
) -> None:
    upstream.chunk_delay = 0.3
    upstream.chunks = 5
    with openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY) as client:
        t0 = time.monotonic()
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        first = next(iter(stream))
        t_first = time.monotonic() - t0
        assert first.choices[0].delta.role == "assistant"
        assert upstream.completed_streams == 0  # the upstream is still generating
        list(stream)
    assert t_first < 0.3 * 5


def test_client_disconnect_closes_the_upstream_stream(gateway: RunningGateway, upstream: FakeOpenAI) -> None:
    upstream.chunk_delay = 0.2
    upstream.chunks = 50
    body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True}
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
    deadline = time.time() + 5
    while upstream.cancelled == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert upstream.cancelled == 1
    assert upstream.completed_streams == 0


def test_upstream_failure_mid_stream_sends_error_event_then_done(gateway: RunningGateway) -> None:
    body = {"model": "fake-reset_mid_stream", "messages": MSG, "stream": True}
    r = httpx.post(
        gateway.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    )
    events = [e for e in r.text.split("\n\n") if e]
    assert r.status_code == 200
    assert events[-1] == "data: [DONE]"
    assert '"error"' in events[-2] and "upstream" in events[-2]


def test_sdk_raises_on_mid_stream_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="fake-reset_mid_stream", messages=MSG, stream=True)
    try:
        list(stream)
    except openai.APIError as exc:
        assert "upstream" in str(exc).lower()
    else:
        raise AssertionError("expected the SDK to surface the error event")


def test_streamed_response_carries_gateway_headers(gateway: RunningGateway) -> None:
    body = {"model": "alias", "messages": MSG, "stream": True}
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-pointsman-backend"] == "up"
        assert r.headers["x-pointsman-model"] == "gpt-4o-mini"
        r.read()


def test_responses_stream_failure_ends_with_an_error_event_continuing_the_sequence(
    gateway: RunningGateway,
) -> None:
    body = {"model": "fake-reset_mid_stream", "input": "hi", "stream": True}
    r = httpx.post(
        gateway.base_url + "/responses", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    )
    events = [json.loads(e.split("data: ", 1)[1]) for e in r.text.split("\n\n") if "data: " in e]
    last = events[-1]
    assert last["type"] == "error" and last["message"] and last["code"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
