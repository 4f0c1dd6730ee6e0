"""The litellm SDK as a client of the gateway, scenario by scenario."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.expected import MID_STREAM_MESSAGE, common, flaky_model
from tests.clients.litellm_client import SCENARIOS
from tests.clients.matrix import check, run_python_driver, upstream_attempts
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

CLIENT = "litellm"
EXPECTED: dict[str, Any] = {
    # litellm's own exception mapping: a 403 is its generic APIError, a 502 its BadGatewayError, and a stream
    # that fails after it started a MidStreamFallbackError (status 500)
    **common(
        CLIENT,
        {
            "error_401": "AuthenticationError",
            "error_403": "APIError",
            "error_404": "NotFoundError",
            "error_5xx": "BadGatewayError",
        },
    ),
    "chat_stream_failure": {"error": "MidStreamFallbackError", "status": 500, "message": MID_STREAM_MESSAGE},
    "responses_stream_failure": {
        "error": "MidStreamFallbackError",
        "status": 500,
        "message": MID_STREAM_MESSAGE,
    },
}


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, Any]:
    results = run_python_driver("tests.clients.litellm_client", matrix_gateway.base_url, CLIENT)
    retried = results.get("error_429_retry")
    if isinstance(retried, dict) and "content" in retried:
        retried["upstream_attempts"] = upstream_attempts(matrix_upstream, flaky_model(CLIENT))
    return results


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_litellm(scenario: str, observed: dict[str, Any]) -> None:
    check(CLIENT, scenario, observed, EXPECTED[scenario])
