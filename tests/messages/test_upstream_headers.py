"""The upstream's answer headers a Messages API client gets, read with the official Anthropic SDK: an Anthropic
backend's ``request-id`` (the SDK's ``_request_id``) and ``anthropic-ratelimit-*`` headers on answers, streams and
errors; a translated answer carries the OpenAI-compatible upstream's request id as
``x-pointsman-upstream-request-id``."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from anthropic.types import MessageParam

from tests.conftest import CLIENT_KEY
from tests.fakes.anthropic_upstream import RATE_LIMITS, FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.messages.conftest import NATIVE, TRANSLATED, messages_config

HI: list[MessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def claude_fake() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(
    claude_fake: FakeAnthropic, openai_fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    with RunningGateway(messages_config(claude_fake, openai_fake, tmp_path_factory.mktemp("data"))) as g:
        yield g


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def test_a_message_carries_anthropics_request_id(
    client: anthropic.Anthropic, claude_fake: FakeAnthropic
) -> None:
    message = client.messages.create(model=NATIVE, max_tokens=64, messages=HI)
    assert message._request_id == claude_fake.answered_ids[-1]


def test_a_message_carries_anthropics_rate_limit_headers(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=NATIVE, max_tokens=64, messages=HI)
    assert {k: raw.headers.get(k) for k in RATE_LIMITS} == RATE_LIMITS


def test_a_streamed_message_carries_anthropics_request_id(
    client: anthropic.Anthropic, claude_fake: FakeAnthropic
) -> None:
    with client.messages.stream(model=NATIVE, max_tokens=64, messages=HI) as stream:
        stream.get_final_message()
        assert stream.request_id == claude_fake.answered_ids[-1]


def test_an_anthropic_error_carries_its_request_id(
    client: anthropic.Anthropic, claude_fake: FakeAnthropic
) -> None:
    body = b'{"type": "error", "error": {"type": "invalid_request_error", "message": "messages: bad"}}'
    claude_fake.canned["claude-refusing"] = (400, body, {"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"})
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="claude-refusing", max_tokens=64, messages=HI)
    assert info.value.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"


def test_a_translated_message_carries_the_upstreams_request_id(
    client: anthropic.Anthropic, openai_fake: FakeOpenAI
) -> None:
    raw = client.messages.with_raw_response.create(model=TRANSLATED, max_tokens=64, messages=HI)
    assert raw.headers["x-pointsman-upstream-request-id"] == openai_fake.answered_ids[-1]


def test_a_token_count_carries_anthropics_request_id(
    client: anthropic.Anthropic, claude_fake: FakeAnthropic
) -> None:
    raw = client.messages.with_raw_response.count_tokens(model=NATIVE, messages=HI)
    assert raw.headers["request-id"] == claude_fake.answered_ids[-1]
