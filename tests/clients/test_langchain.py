"""LangChain's ChatOpenAI (invoke, stream, batch, bind_tools, with_structured_output in each method, the
Responses API) and OpenAIEmbeddings through the gateway, scenario by scenario."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.expected import MID_STREAM_MESSAGE, PERSON, TEXT, for_client
from tests.clients.langchain_client import drive
from tests.clients.matrix import check, with_attempts
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

CLIENT = "langchain"
EXPECTED = for_client(
    CLIENT,
    # langchain-openai raises its own subclasses of the SDK's errors
    {
        "error_401": "OpenAIAuthenticationError",
        "error_403": "OpenAIPermissionDeniedError",
        "error_404": "OpenAIModelNotFoundError",
        "error_5xx": "OpenAIAPIError",
    },
    {
        "batch": [TEXT, TEXT],
        "structured_function_calling": PERSON,
        "structured_json_mode": {"answer": TEXT},
        "structured_stream": PERSON,
        "chat_stream_failure": {"error": "APIError", "message": MID_STREAM_MESSAGE},
        # langchain-openai raises a Responses `error` event as ValueError("<code>: <message>")
        "responses_stream_failure": {
            "error": "ValueError",
            "message": f"upstream_disconnected: {MID_STREAM_MESSAGE}",
        },
    },
    not_covered=frozenset({"models", "chat_n2", "logprobs", "responses_tools_stream"}),
)


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, Any]:
    return with_attempts(drive(matrix_gateway.base_url, CLIENT), matrix_upstream, CLIENT)


@pytest.mark.parametrize("scenario", EXPECTED)
def test_langchain(scenario: str, observed: dict[str, Any]) -> None:
    check(CLIENT, scenario, observed, EXPECTED[scenario])
