"""Prompt and completion content on spans and analytics events: only with ``content: true``, only for teams
approved for data capture, and redacted with every detector."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.telemetry import FakeTelemetry
from tests.gateway_runner import RunningGateway
from tests.observe.test_posthog import posthog_config
from tests.observe.test_traces import server_span, traced_config

EMAIL = "jane.doe@example.com"
QUESTION = f"Write to {EMAIL} about the invoice"


def approve(gw: RunningGateway, team: str = "search") -> None:
    r = httpx.post(
        f"{gw.url}/admin/teams/{team}/capture",
        json={"approved_by": "alice@example.org"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def ask(gw: RunningGateway, stream: bool = False) -> str:
    """Sends QUESTION; returns the answer's text as the client saw it."""
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
        "stream": stream,
    }
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    r = httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    if not stream:
        return str(r.json()["choices"][0]["message"]["content"])
    text = ""
    for block in r.text.split("\n\n"):
        if block.startswith("data: {"):
            for c in orjson.loads(block[6:]).get("choices", ()):
                text += c.get("delta", {}).get("content") or ""
    return text


@pytest.fixture
def traced(upstream: FakeOpenAI, telemetry: FakeTelemetry) -> Iterator[RunningGateway]:
    with RunningGateway(traced_config(upstream, telemetry, content=True)) as gw:
        yield gw


def test_span_of_an_approved_team_carries_the_redacted_conversation(
    traced: RunningGateway, telemetry: FakeTelemetry
) -> None:
    approve(traced)
    answer = ask(traced)
    attrs = server_span(telemetry).attrs
    sent = orjson.loads(attrs["gen_ai.input.messages"])
    assert sent[0] == {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
    assert sent[1]["role"] == "user"
    (part,) = sent[1]["parts"]
    assert part["type"] == "text" and EMAIL not in part["content"] and "about the invoice" in part["content"]
    out = orjson.loads(attrs["gen_ai.output.messages"])
    assert out == [
        {"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}
    ]


def test_span_of_a_streamed_answer_carries_the_reassembled_text(
    traced: RunningGateway, telemetry: FakeTelemetry
) -> None:
    approve(traced)
    answer = ask(traced, stream=True)
    out = orjson.loads(server_span(telemetry).attrs["gen_ai.output.messages"])
    assert out[0]["parts"] == [{"type": "text", "content": answer}]


def test_span_of_an_unapproved_team_has_no_content(traced: RunningGateway, telemetry: FakeTelemetry) -> None:
    ask(traced)
    attrs = server_span(telemetry).attrs
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert not [s for s in telemetry.spans if "invoice" in repr(s.attrs)]


def test_approved_team_without_content_export_has_no_content(
    upstream: FakeOpenAI, telemetry: FakeTelemetry
) -> None:
    with RunningGateway(traced_config(upstream, telemetry)) as gw:
        approve(gw)
        ask(gw)
        attrs = server_span(telemetry).attrs
    assert "gen_ai.input.messages" not in attrs


def test_analytics_event_of_an_approved_team_carries_input_and_output_choices(
    upstream: FakeOpenAI, telemetry: FakeTelemetry
) -> None:
    with RunningGateway(posthog_config(upstream, telemetry, content=True)) as gw:
        approve(gw)
        answer = ask(gw)
        events = telemetry.wait_for("events", 2)
    p = next(e for e in events if e["event"] == "$ai_generation")["properties"]
    assert [m["role"] for m in p["$ai_input"]] == ["system", "user"]
    assert EMAIL not in p["$ai_input"][1]["content"] and "about the invoice" in p["$ai_input"][1]["content"]
    (choice,) = p["$ai_output_choices"]
    assert (choice["role"], choice["content"], choice["finish_reason"]) == ("assistant", answer, "stop")


def test_analytics_event_of_an_unapproved_team_has_no_content(
    upstream: FakeOpenAI, telemetry: FakeTelemetry
) -> None:
    with RunningGateway(posthog_config(upstream, telemetry, content=True)) as gw:
        ask(gw)
        events = telemetry.wait_for("events", 2)
    p = next(e for e in events if e["event"] == "$ai_generation")["properties"]
    assert "$ai_input" not in p and "$ai_output_choices" not in p


def in_house(cfg: dict[str, Any]) -> dict[str, Any]:
    """The upstream as an in-house backend (a team without third-party consent is still served by it), and
    consent decisions read back every 0.1 s."""
    cfg["backends"]["up"]["third_party"] = False
    cfg["consent"] = {"approval_refresh_s": 0.1}
    return cfg


def refuse_third_parties(gw: RunningGateway, team: str = "search") -> None:
    r = httpx.put(
        f"{gw.url}/admin/teams/{team}/consent",
        json={"approved": False, "by": "dana@example.org"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    time.sleep(0.3)  # read back within consent.approval_refresh_s


def test_span_of_a_team_that_refused_third_parties_has_no_content(
    upstream: FakeOpenAI, telemetry: FakeTelemetry
) -> None:
    with RunningGateway(in_house(traced_config(upstream, telemetry, content=True))) as gw:
        approve(gw)
        refuse_third_parties(gw)
        ask(gw)
        attrs = server_span(telemetry).attrs
    assert attrs["pointsman.team"] == "search"
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert not [s for s in telemetry.spans if "invoice" in repr(s.attrs)]


def test_analytics_event_of_a_team_that_refused_third_parties_has_no_content(
    upstream: FakeOpenAI, telemetry: FakeTelemetry
) -> None:
    with RunningGateway(in_house(posthog_config(upstream, telemetry, content=True))) as gw:
        approve(gw)
        refuse_third_parties(gw)
        ask(gw)
        events = telemetry.wait_for("events", 2)
    p = next(e for e in events if e["event"] == "$ai_generation")["properties"]
    assert p["pointsman_team"] == "search"
    assert "$ai_input" not in p and "$ai_output_choices" not in p
    assert "invoice" not in repr(events)
