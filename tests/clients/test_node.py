"""The official OpenAI Node SDK and the Vercel AI SDK through the gateway, scenario by scenario.

Each client is one Node process that runs all its scenarios and prints the results; each test checks one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.expected import (
    MID_STREAM_MESSAGE,
    OFFICIAL_SDK_ERRORS,
    OFFICIAL_SDK_STREAM_FAILURES,
    for_client,
    inputs,
)
from tests.clients.matrix import check, with_attempts
from tests.clients.node_runner import run_driver
from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

OPENAI_NODE, VERCEL = "openai-node", "vercel-ai"
SCRIPTS = {OPENAI_NODE: "openai_node.mjs", VERCEL: "vercel_ai.mjs"}
EXPECTED = {
    OPENAI_NODE: for_client(OPENAI_NODE, OFFICIAL_SDK_ERRORS, OFFICIAL_SDK_STREAM_FAILURES),
    VERCEL: for_client(
        VERCEL,
        dict.fromkeys(OFFICIAL_SDK_ERRORS, "APICallError"),
        # streamText reports a failed stream as an `error` part carrying the event's error object
        {
            "chat_stream_failure": {"error": "chunk", "message": MID_STREAM_MESSAGE},
            "responses_stream_failure": {"error": "chunk", "message": MID_STREAM_MESSAGE},
        },
        # the SDK always asks for stream usage and float embeddings, and has no n or logprobs option
        not_covered=frozenset({"models", "chat_stream", "chat_n2", "logprobs", "embeddings_base64"}),
    ),
}


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, dict[str, Any]]:
    return {
        c: with_attempts(
            run_driver(script, inputs(matrix_gateway.base_url, CLIENT_KEY, c)), matrix_upstream, c
        )
        for c, script in SCRIPTS.items()
    }


@pytest.mark.parametrize("scenario", EXPECTED[OPENAI_NODE])
def test_openai_node(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check(OPENAI_NODE, scenario, observed[OPENAI_NODE], EXPECTED[OPENAI_NODE][scenario])


@pytest.mark.parametrize("scenario", EXPECTED[VERCEL])
def test_vercel_ai(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check(VERCEL, scenario, observed[VERCEL], EXPECTED[VERCEL][scenario])
