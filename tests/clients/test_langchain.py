"""LangChain's ChatOpenAI (invoke, stream, batch, bind_tools, with_structured_output in each method, the
Responses API) and OpenAIEmbeddings through the gateway, scenario by scenario."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.expected import MID_STREAM_MESSAGE, PERSON, TEXT, common, flaky_model
from tests.clients.langchain_client import SCENARIOS, drive
from tests.clients.matrix import check, upstream_attempts
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

CLIENT = "langchain"
EXPECTED: dict[str, Any] = {
    # langchain-openai raises its own subclasses of the SDK's errors
    **common(
        CLIENT,
        {
            "error_401": "OpenAIAuthenticationError",
            "error_403": "OpenAIPermissionDeniedError",
            "error_404": "OpenAIModelNotFoundError",
            "error_5xx": "OpenAIAPIError",
        },
    ),
    "batch": [TEXT, TEXT],
    "structured_function_calling": PERSON,
    "structured_json_mode": {"answer": TEXT},
    "structured_stream": PERSON,
    "chat_stream_failure": {"error": "APIError", "message": MID_STREAM_MESSAGE},
    "responses_stream_failure": {
        "error": "ValueError",
        "message": f"upstream_unreachable: {MID_STREAM_MESSAGE}",
    },
}


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, Any]:
    results = drive(matrix_gateway.base_url, CLIENT)
    retried = results.get("error_429_retry")
    if isinstance(retried, dict) and "content" in retried:
        retried["upstream_attempts"] = upstream_attempts(matrix_upstream, flaky_model(CLIENT))
    return results


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_langchain(scenario: str, observed: dict[str, Any]) -> None:
    check(CLIENT, scenario, observed, EXPECTED[scenario])
