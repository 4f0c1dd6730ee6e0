"""An OpenAI SDK client talks to Anthropic's Messages API through the gateway (litellm translation)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.gateway_runner import RunningGateway

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


# One gateway for the module: litellm caches its HTTP clients per process, bound to the first event loop.
@pytest.fixture(scope="module")
def claude(anthropic: FakeAnthropic) -> Iterator[openai.OpenAI]:
    cfg = anthropic.gateway_config(CLIENT_KEY)
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        yield c


def test_chat_is_translated_to_anthropic_messages(claude: openai.OpenAI, anthropic: FakeAnthropic) -> None:
    r = claude.chat.completions.create(model="claude-3-5-haiku", messages=MSG, max_tokens=20)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Bonjour from Claude"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (13, 9)
    assert anthropic.requests[-1]["model"] == "claude-3-5-haiku"
    assert anthropic.headers[-1]["x-api-key"] == "sk-ant-test"


def test_streamed_chat_is_translated(claude: openai.OpenAI) -> None:
    chunks = list(
        claude.chat.completions.create(
            model="claude-3-5-haiku",
            messages=MSG,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "Bonjour from Claude"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


def test_provider_error_is_openai_shaped(claude: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        claude.chat.completions.create(model="claude-overloaded", messages=MSG, max_tokens=5)  # type: ignore[arg-type]
    assert info.value.status_code == 502
