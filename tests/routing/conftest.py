"""Helpers for routing tests: configs over two fake upstreams, SDK calls that report where they were served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

MSG = [{"role": "user", "content": "hi"}]
TEAM_KEY = "sk-test-summarizer-0001"


def two_backend_config(primary: FakeOpenAI, secondary: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    """Backend ``up`` (primary) and ``up2`` (secondary); models ``m-primary``/``m-secondary`` on each (both sent
    upstream as ``gpt-4o-mini``), a second key ``summarizer`` whose default tag is ``task=summarize``,
    weights seeded."""
    cfg: dict[str, Any] = basic_config(primary.url)
    cfg["backends"]["up2"] = {"type": "openai", "base_url": secondary.url}
    cfg["models"].update(
        {
            "m-primary": {"backend": "up", "upstream_model": "gpt-4o-mini"},
            "m-secondary": {"backend": "up2", "upstream_model": "gpt-4o-mini"},
        }
    )
    cfg["keys"].append({"name": "summarizer", "key": TEAM_KEY, "team": "docs", "tags": {"task": "summarize"}})
    cfg["routing"] = {"seed": 1234}
    cfg.update(extra)
    return cfg


def chat(client: openai.OpenAI, model: str = "gpt-4o-mini", **kw: Any) -> httpx.Headers:
    """One chat completion; returns the response headers (x-pointsman-backend, x-pointsman-route, ...)."""
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MSG, **kw)  # type: ignore[arg-type]
    raw.parse()
    return raw.headers


_OPEN: list[openai.OpenAI | httpx.Client] = []


def sdk(gw: RunningGateway | Any, key: str = CLIENT_KEY) -> openai.OpenAI:
    """An SDK client for a gateway (closed at the end of the test); no SDK retries."""
    c = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    _OPEN.append(c)
    return c


def admin(gw: RunningGateway | Any) -> httpx.Client:
    """An admin-API client for a gateway (closed at the end of the test)."""
    c = httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    _OPEN.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def reset(fake: FakeOpenAI) -> None:
    """Forget what a shared fake saw and how it was told to behave."""
    fake.requests.clear()
    fake.behaviors.clear()
    fake.delay = 0.0


@pytest.fixture(scope="module")
def shared_upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    """A primary and a secondary fake shared by a module's tests (reset before each test by ``fresh``)."""
    a, b = FakeOpenAI(name="primary").start(), FakeOpenAI(name="secondary").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def fresh(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> tuple[FakeOpenAI, FakeOpenAI]:
    for fake in shared_upstreams:
        reset(fake)
    return shared_upstreams


@pytest.fixture
def gateway_factory() -> Iterator[Any]:
    """Start gateways from config dicts; all are stopped at the end of the test."""
    started: list[RunningGateway] = []

    def start(cfg: dict[str, Any]) -> RunningGateway:
        gw = RunningGateway(cfg).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()
