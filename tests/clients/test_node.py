"""The official OpenAI Node SDK and the Vercel AI SDK through the gateway, scenario by scenario.

Each client is one Node process that runs all its scenarios and prints the results; each test checks one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.expected import MID_STREAM_MESSAGE, common, flaky_model, inputs
from tests.clients.matrix import check, upstream_attempts
from tests.clients.node_runner import run_driver
from tests.clients.openai_python import SYNC_SCENARIOS
from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

OPENAI_NODE, VERCEL = "openai-node", "vercel-ai"
SCRIPTS = {OPENAI_NODE: "openai_node.mjs", VERCEL: "vercel_ai.mjs"}
VERCEL_SCENARIOS = (
    "chat",
    "chat_stream_usage",
    "tools",
    "tools_stream",
    "tools_multi_step",
    "structured",
    "embeddings_float",
    "responses",
    "responses_stream",
    "responses_tools",
    "responses_tools_stream",
    "responses_tools_multi_step",
    "responses_structured",
    "responses_stream_failure",
    "chat_stream_failure",
    "error_401",
    "error_403",
    "error_404",
    "error_5xx",
    "error_429_retry",
    "headers",
)
EXPECTED: dict[str, dict[str, Any]] = {
    OPENAI_NODE: {
        **common(
            OPENAI_NODE,
            {
                "error_401": "AuthenticationError",
                "error_403": "PermissionDeniedError",
                "error_404": "NotFoundError",
                "error_5xx": "InternalServerError",
            },
        ),
        "chat_stream_failure": {"error": "APIError", "message": MID_STREAM_MESSAGE},
        "responses_stream_failure": {
            "event": "error",
            "message": MID_STREAM_MESSAGE,
            "sequence_number_follows": True,
        },
    },
    VERCEL: {
        **common(VERCEL, dict.fromkeys(("error_401", "error_403", "error_404", "error_5xx"), "APICallError")),
        "chat_stream_failure": {"error": "chunk", "message": MID_STREAM_MESSAGE},
        "responses_stream_failure": {"error": "chunk", "message": MID_STREAM_MESSAGE},
    },
}


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, dict[str, Any]]:
    out = {
        c: run_driver(script, inputs(matrix_gateway.base_url, CLIENT_KEY, c)) for c, script in SCRIPTS.items()
    }
    for client, results in out.items():
        retried = results.get("error_429_retry")
        if isinstance(retried, dict) and "content" in retried:
            retried["upstream_attempts"] = upstream_attempts(matrix_upstream, flaky_model(client))
    return out


@pytest.mark.parametrize("scenario", SYNC_SCENARIOS)
def test_openai_node(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check(OPENAI_NODE, scenario, observed[OPENAI_NODE], EXPECTED[OPENAI_NODE][scenario])


@pytest.mark.parametrize("scenario", VERCEL_SCENARIOS)
def test_vercel_ai(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check(VERCEL, scenario, observed[VERCEL], EXPECTED[VERCEL][scenario])
