from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway


@pytest.fixture
def gateway(upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    cfg = basic_config(upstream.url)
    cfg["backends"]["dead"] = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 1}  # type: ignore[index]
    cfg["backends"]["slow"] = {"type": "openai", "base_url": upstream.url, "timeout_s": 0.5}  # type: ignore[index]
    cfg["models"]["dead-model"] = {"backend": "dead"}  # type: ignore[index]
    cfg["models"]["slow-hang"] = {"backend": "slow"}  # type: ignore[index]
    cfg["server"] = {"max_body_bytes": 64 * 1024}
    with RunningGateway(cfg) as gw:
        yield gw


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c
