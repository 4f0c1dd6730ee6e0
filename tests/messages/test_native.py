"""Messages requests for a model on an Anthropic backend pass to it natively: every field as the client wrote
it (prompt caching, extended thinking, tool use, images, documents), its headers forwarded, the gateway's own
credential presented; tags in ``metadata`` route the request and only ``user_id`` reaches Anthropic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.messages.conftest import NATIVE, VERSION, Messages, ask, messages_config
from tests.wire.anthropic.event_order import check_sequence

CACHED = {"type": "ephemeral"}
RICH: dict[str, Any] = {
    "model": NATIVE,
    "max_tokens": 4096,
    "system": [{"type": "text", "text": "You are a careful assistant.", "cache_control": CACHED}],
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "tools": [
        {
            "name": "lookup",
            "description": "Look a document up",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="},
                    "title": "report",
                    "citations": {"enabled": True},
                },
                {"type": "text", "text": "Summarise, then look up 'x'.", "cache_control": CACHED},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should look it up.", "signature": "sig-1"},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x is 42"}],
        },
    ],
    "stop_sequences": ["\n\nHuman:"],
    "top_k": 40,
    "metadata": {"user_id": "user-7"},
}


@pytest.fixture
def gw(claude: FakeAnthropic, upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    routes = [
        {
            "name": "summaries",
            "match": {"tags": {"task": "summarize"}},
            "targets": [{"model": "claude-sonnet-4-5"}],
        }
    ]
    with RunningGateway(messages_config(claude, upstream, tmp_path, routes=routes)) as g:
        yield g


@pytest.mark.parametrize("stream", [False, True])
def test_every_field_reaches_anthropic_as_the_client_wrote_it(
    api: Messages, claude: FakeAnthropic, stream: bool
) -> None:
    body = {**RICH, "stream": stream} if stream else RICH
    r = api.post(body)
    assert r.status_code == 200, r.text
    assert claude.requests[-1] == body


def test_the_answer_is_anthropics_own(api: Messages) -> None:
    r = api.post(RICH)
    doc = r.json()
    assert doc["content"][0] == {"type": "thinking", "thinking": "Let me think.", "signature": "sig-fake"}
    assert doc["content"][1]["text"].startswith("The tool said: x is 42")
    assert r.headers["x-pointsman-backend"] == "anthropic"


def test_a_streamed_answer_with_thinking_is_relayed_as_anthropic_sent_it(api: Messages) -> None:
    r, raw = api.stream(RICH)
    assert r.headers["content-type"].startswith("text/event-stream")
    kinds = [doc["delta"]["type"] for name, doc in check_sequence([raw]) if name == "content_block_delta"]
    assert kinds[:2] == ["thinking_delta", "signature_delta"]


def sent_lines(claude: FakeAnthropic, name: str) -> list[str]:
    """The values of the header lines named ``name`` that the last request to Anthropic carried."""
    return [v for k, v in claude.lines[-1] if k.lower() == name]


def test_anthropic_version_and_beta_headers_are_forwarded(api: Messages, claude: FakeAnthropic) -> None:
    api.post(ask(NATIVE), **{"anthropic-beta": "prompt-caching-2024-07-31,extended-cache-ttl-2025-04-11"})
    sent = claude.headers[-1]
    assert sent["anthropic-version"] == VERSION
    assert sent["anthropic-beta"] == "prompt-caching-2024-07-31,extended-cache-ttl-2025-04-11"


def test_a_client_without_anthropic_version_gets_the_default(
    gw: RunningGateway, claude: FakeAnthropic
) -> None:
    api = Messages(gw.url)
    del api.headers["anthropic-version"]
    try:
        assert api.post(ask(NATIVE)).status_code == 200
    finally:
        api.close()
    assert sent_lines(claude, "anthropic-version") == [VERSION]


def test_a_clients_anthropic_version_replaces_the_default(api: Messages, claude: FakeAnthropic) -> None:
    assert api.post(ask(NATIVE), **{"anthropic-version": "2024-10-22"}).status_code == 200
    assert sent_lines(claude, "anthropic-version") == ["2024-10-22"]


def test_anthropic_beta_sent_on_several_lines_reaches_anthropic_with_every_value(
    api: Messages, claude: FakeAnthropic
) -> None:
    lines = [
        ("x-api-key", CLIENT_KEY),
        ("anthropic-version", VERSION),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("anthropic-beta", "output-128k-2025-02-19"),
    ]
    r = api.http.post("/v1/messages", json=ask(NATIVE), headers=lines)
    assert r.status_code == 200, r.text
    values = [v.strip() for line in sent_lines(claude, "anthropic-beta") for v in line.split(",")]
    assert values == ["prompt-caching-2024-07-31", "output-128k-2025-02-19"]


def test_anthropic_gets_the_gateways_credential_never_the_clients(
    api: Messages, claude: FakeAnthropic
) -> None:
    api.post(ask(NATIVE))
    assert claude.headers[-1]["x-api-key"] == "sk-ant-test"
    assert "authorization" not in {k.lower() for k in claude.headers[-1]}


def test_metadata_tags_route_the_request_and_only_user_id_reaches_anthropic(
    api: Messages, claude: FakeAnthropic
) -> None:
    r = api.post(ask(NATIVE, metadata={"task": "summarize", "user_id": "user-7"}))
    assert r.headers["x-pointsman-route"] == "summaries"
    assert claude.requests[-1]["model"] == "claude-sonnet-4-5"
    assert claude.requests[-1]["metadata"] == {"user_id": "user-7"}
    api.post(ask(NATIVE, metadata={"task": "summarize"}))
    assert "metadata" not in claude.requests[-1]


def test_the_task_header_routes_messages_too(api: Messages) -> None:
    r = api.post(ask(NATIVE), **{"x-pointsman-task": "summarize"})
    assert r.headers["x-pointsman-route"] == "summaries"


def test_anthropics_own_refusal_is_passed_through(api: Messages) -> None:
    bad = {**ask(NATIVE), "thinking": {"type": "enabled", "budget_tokens": 100}}
    r = api.post(bad)
    assert r.status_code == 400
    assert r.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "thinking.budget_tokens: must be at least 1024",
        },
    }


@pytest.mark.parametrize("stream", [False, True])
def test_anthropics_error_document_reaches_the_client_byte_for_byte(
    api: Messages, claude: FakeAnthropic, stream: bool
) -> None:
    body = (
        b'{"type": "error", "error": {"type": "invalid_request_error", "message": "messages: bad"}, '
        b'"request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}'
    )
    claude.canned["claude-refusing"] = (400, body, {"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"})
    r = api.post(ask("claude-refusing", stream=stream))
    assert (r.status_code, r.content) == (400, body)


def test_a_method_other_than_post_is_405_in_anthropics_shape(api: Messages) -> None:
    r = api.http.get("/v1/messages", headers=api.headers)
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    assert r.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Method GET not allowed."},
    }
