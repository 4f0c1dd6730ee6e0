"""The official OpenAI Python SDK (sync and async clients) through the gateway, scenario by scenario."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.clients.expected import OFFICIAL_SDK_ERRORS, OFFICIAL_SDK_STREAM_FAILURES, for_client
from tests.clients.matrix import check, with_attempts
from tests.clients.openai_python import ASYNC_COVERS, drive_async, drive_sync
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

SYNC, ASYNC = "python-sync", "python-async"
EXPECTED = {c: for_client(c, OFFICIAL_SDK_ERRORS, OFFICIAL_SDK_STREAM_FAILURES) for c in (SYNC, ASYNC)}
EXPECTED[ASYNC] = {k: v for k, v in EXPECTED[ASYNC].items() if k in ASYNC_COVERS}


@pytest.fixture(scope="module")
def observed(matrix_gateway: RunningGateway, matrix_upstream: FakeOpenAI) -> dict[str, dict[str, Any]]:
    url = matrix_gateway.base_url
    return {
        SYNC: with_attempts(drive_sync(url, SYNC), matrix_upstream, SYNC),
        ASYNC: with_attempts(asyncio.run(drive_async(url, ASYNC)), matrix_upstream, ASYNC),
    }


@pytest.mark.parametrize("scenario", EXPECTED[SYNC])
def test_sync_client(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check("openai-python sync", scenario, observed[SYNC], EXPECTED[SYNC][scenario])


@pytest.mark.parametrize("scenario", EXPECTED[ASYNC])
def test_async_client(scenario: str, observed: dict[str, dict[str, Any]]) -> None:
    check("openai-python async", scenario, observed[ASYNC], EXPECTED[ASYNC][scenario])
