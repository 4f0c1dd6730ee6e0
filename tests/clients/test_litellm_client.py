"""The litellm SDK as a client of the gateway, scenario by scenario."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.expected import MID_STREAM_MESSAGE, for_client
from tests.clients.matrix import check, run_python_driver, with_attempts
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

CLIENT = "litellm"
FAILED_STREAM = {"error": "MidStreamFallbackError", "status": 500, "message": MID_STREAM_MESSAGE}
EXPECTED = for_client(
    CLIENT,
    # litellm's own exception mapping: a 403 is its generic APIError, a 502 its BadGatewayError
    {
        "error_401": "AuthenticationError",
        "error_403": "APIError",
        "error_404": "NotFoundError",
        "error_5xx": "BadGatewayError",
    },
    # and a stream that fails after it started a MidStreamFallbackError (status 500)
    {"chat_stream_failure": FAILED_STREAM, "responses_stream_failure": FAILED_STREAM},
    # litellm.responses() returns the Responses objects; its tool and structured helpers are chat's, and it
    # has no call that lists an OpenAI-compatible server's models
    not_covered=frozenset(
        {
            "models",
            "responses_tools",
            "responses_tools_stream",
            "responses_tools_multi_step",
            "responses_structured",
        }
    ),
)


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, Any]:
    results = run_python_driver("tests.clients.litellm_client", matrix_gateway.base_url, CLIENT)
    return with_attempts(results, matrix_upstream, CLIENT)


@pytest.mark.parametrize("scenario", EXPECTED)
def test_litellm(scenario: str, observed: dict[str, Any]) -> None:
    check(CLIENT, scenario, observed, EXPECTED[scenario])
