"""The official OpenAI Python SDK (sync and async clients) through the gateway, scenario by scenario."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.clients.expected import MID_STREAM_MESSAGE, common, flaky_model
from tests.clients.matrix import check, upstream_attempts
from tests.clients.openai_python import ASYNC_SCENARIOS, SYNC_SCENARIOS, drive_async, drive_sync
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

ERRORS = {
    "error_401": "AuthenticationError",
    "error_403": "PermissionDeniedError",
    "error_404": "NotFoundError",
    "error_5xx": "InternalServerError",
}
OWN = {
    "chat_stream_failure": {"error": "APIError", "message": MID_STREAM_MESSAGE},
    "responses_stream_failure": {
        "event": "error",
        "message": MID_STREAM_MESSAGE,
        "sequence_number_follows": True,
    },
}
SYNC, ASYNC = "python-sync", "python-async"


def expected(client: str) -> dict[str, Any]:
    return {**common(client, ERRORS), **OWN}


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, dict[str, Any]]:
    out = {
        SYNC: drive_sync(matrix_gateway.base_url, SYNC),
        ASYNC: asyncio.run(drive_async(matrix_gateway.base_url, ASYNC)),
    }
    for client, results in out.items():
        retried = results.get("error_429_retry")
        if isinstance(retried, dict) and "content" in retried:
            retried["upstream_attempts"] = upstream_attempts(matrix_upstream, flaky_model(client))
    return out


@pytest.mark.parametrize("scenario", SYNC_SCENARIOS)
def test_sync_client(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check("openai-python sync", scenario, observed[SYNC], expected(SYNC)[scenario])


@pytest.mark.parametrize("scenario", ASYNC_SCENARIOS)
def test_async_client(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check("openai-python async", scenario, observed[ASYNC], expected(ASYNC)[scenario])
