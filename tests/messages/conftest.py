"""A gateway with an Anthropic backend (the fake Anthropic API, taking Messages requests natively) and an
OpenAI-compatible one (the fake OpenAI API, taking them translated), and a raw Messages API client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

NATIVE = "claude-haiku-4-5"
TRANSLATED = "gpt-4o-mini"
VERSION = "2023-06-01"


def messages_config(
    claude: FakeAnthropic, openai_fake: FakeOpenAI, data_dir: Path, **extra: Any
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "server": {"data_dir": str(data_dir)},
        "backends": {
            "anthropic": {
                "type": "litellm",
                "provider": "anthropic",
                "api_key": "sk-ant-test",
                "api_base": claude.url,
            },
            "up": {"type": "openai", "base_url": openai_fake.url, "api_key": "sk-upstream-secret"},
        },
        "models": {
            "claude-*": {"backend": "anthropic"},
            TRANSLATED: {"backend": "up"},
            "fake-*": {"backend": "up"},
        },
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
        "routing": {"breaker": {"consecutive_failures": 10_000, "min_requests": 10_000}},
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def claude() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


class Messages:
    """Anthropic's Messages API of a running gateway, over plain HTTP (so every byte can be looked at)."""

    def __init__(self, base: str, key: str = CLIENT_KEY) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.headers = {"x-api-key": key, "anthropic-version": VERSION}

    def post(self, body: dict[str, Any], path: str = "/v1/messages", **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers={**self.headers, **headers})

    def stream(self, body: dict[str, Any], **headers: str) -> tuple[httpx.Response, bytes]:
        with self.http.stream(
            "POST", "/v1/messages", json={**body, "stream": True}, headers={**self.headers, **headers}
        ) as r:
            return r, r.read()

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def api(gw: RunningGateway) -> Iterator[Messages]:
    """The Messages API of the module's gateway (``gw``), with the client key."""
    m = Messages(gw.url)
    yield m
    m.close()


def ask(model: str, content: Any = "hi", **kw: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": content}], **kw}
