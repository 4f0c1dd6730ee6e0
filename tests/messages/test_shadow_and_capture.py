"""Shadow tests and capture for Messages traffic: a Messages request served natively is shadowed to a candidate
on an OpenAI-compatible backend (the request translated for it, its answer read back as a message) and the
pair compared by the same comparators; captured Messages traffic is stored and exported as fine-tuning
examples."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.messages.conftest import NATIVE, TRANSLATED, Messages, ask, messages_config

TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.fixture
def gw(claude: FakeAnthropic, upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    routes = [
        {
            "name": "claude",
            "match": {"model": NATIVE},
            "targets": [{"model": NATIVE}],
            "shadow": {
                "model": TRANSLATED,
                "sample_rate": 1.0,
                "compare": ["token_f1", "tool_calls", "exact"],
            },
            "capture": {"sample_rate": 1.0, "retain_days": 30},
        }
    ]
    cfg = messages_config(claude, upstream, tmp_path, routes=routes, capture={"flush_interval_s": 0.05})
    with RunningGateway(cfg) as g:
        yield g


@pytest.fixture
def admin(gw: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as c:
        yield c


def pairs(admin: httpx.Client, n: int) -> dict[str, dict[str, Any]]:
    deadline = time.time() + 20
    got: list[dict[str, Any]] = []
    while time.time() < deadline:
        got = admin.get("/admin/shadow/pairs").json()["data"]
        if len(got) >= n:
            break
        time.sleep(0.05)
    assert len(got) >= n, got
    return {p["id"]: p for p in got}


@pytest.mark.parametrize("stream", [False, True])
def test_a_messages_request_is_shadowed_to_a_candidate_on_another_backend(
    api: Messages, admin: httpx.Client, upstream: FakeOpenAI, stream: bool
) -> None:
    body = ask(NATIVE, "Weather in Paris?", tools=[TOOL])
    if stream:
        api.stream(body, **{"x-request-id": "sh-1"})
    else:
        api.post(body, **{"x-request-id": "sh-1"})
    pair = pairs(admin, 1)["sh-1"]
    assert (pair["endpoint"], pair["stream"], pair["outcome"]) == ("messages", stream, "paired")
    assert (pair["primary"]["backend"], pair["candidate"]["backend"]) == ("anthropic", "up")
    assert pair["primary"]["ok"] and pair["candidate"]["ok"]
    assert pair["candidate"]["input_tokens"] == 11 and pair["candidate"]["output_tokens"] == 7
    assert set(pair["scores"]) == {"token_f1", "tool_calls", "exact"}
    assert "tools" in upstream.requests[-1].body  # the candidate was asked the translated request


def test_a_candidate_that_cannot_be_asked_is_a_failed_shadow_not_a_failed_request(
    api: Messages, admin: httpx.Client
) -> None:
    body = {**ask(NATIVE, max_tokens=4096), "thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert api.post(body, **{"x-request-id": "sh-2"}).status_code == 200
    pair = pairs(admin, 1)["sh-2"]
    assert pair["candidate"]["error"] == "untranslatable"


def test_messages_traffic_is_captured_and_exported_as_chat_examples(
    api: Messages, admin: httpx.Client
) -> None:
    admin.post("/admin/teams/search/capture", json={"approved_by": "dpa-7"}).raise_for_status()
    api.post(ask(NATIVE, "Weather in Paris?", system="Be brief.", tools=[TOOL]), **{"x-request-id": "cap-1"})
    admin.post("/admin/capture/flush").raise_for_status()
    traces = admin.get("/admin/capture/traces").json()["data"]
    (trace,) = [t for t in traces if t["request_id"] == "cap-1"]
    assert trace["endpoint"] == "messages"
    assert trace["output"][0]["stop_reason"] == "tool_use"
    files = admin.get("/admin/datasets/export", params={"format": "json", "holdout": 0}).json()["files"]
    (example,) = files["train.jsonl"]
    assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
    assert example["messages"][-1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert example["tools"][0]["function"]["name"] == "get_weather"
