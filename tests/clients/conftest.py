"""One fake upstream and one gateway per test module: every client in the matrix drives the same pair."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.anthropic_expected import TOOL_INPUT
from tests.clients.anthropic_expected import gateway_config as anthropic_gateway_config
from tests.clients.expected import EMBEDDING_MODEL, MODEL, SCOPED_KEY, UPSTREAM_NAME
from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway


def matrix_config(upstream_url: str) -> dict[str, Any]:
    backend = {"type": "openai", "base_url": upstream_url, "api_key": "sk-upstream-secret"}
    return {
        "admin_key": ADMIN_KEY,
        # "faulty" serves the failing models, so their failures never count against "up".
        "backends": {"up": backend, "faulty": dict(backend)},
        "models": {
            MODEL: {"backend": "up"},
            EMBEDDING_MODEL: {"backend": "up"},
            "fake-*": {"backend": "faulty"},
        },
        "keys": [
            {"name": "app", "key": CLIENT_KEY, "team": "matrix"},
            {"name": "scoped", "key": SCOPED_KEY, "team": "matrix", "models": [MODEL, EMBEDDING_MODEL]},
        ],
        "routing": {"breaker": {"consecutive_failures": 10_000, "min_requests": 10_000}},
    }


@pytest.fixture(scope="module")
def matrix_upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name=UPSTREAM_NAME).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def matrix_gateway(matrix_upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    with RunningGateway(matrix_config(matrix_upstream.url)) as gw:
        yield gw


@pytest.fixture(scope="module")
def claude_upstream() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(tool_input=dict(TOOL_INPUT)).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def claude_gateway(claude_upstream: FakeAnthropic, matrix_upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    """Anthropic's clients' gateway: ``claude-*`` natively to the fake Anthropic API, the matrix model to the
    fake OpenAI API through translation."""
    with RunningGateway(anthropic_gateway_config(claude_upstream.url, matrix_upstream.url)) as gw:
        yield gw
