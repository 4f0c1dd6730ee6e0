"""Generated Messages requests, well-formed and not, through a running gateway to both kinds of backend: every
answer is a 2xx or a 4xx in Anthropic's error shape — never a 5xx (a translator or the request path failing on
an odd body) — and a 200 for a translated request is a valid message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.messages.conftest import NATIVE, TRANSLATED, Messages, messages_config
from tests.reliability.probes import is_anthropic_error

scalar = st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=8)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
BLOCK_TYPES = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "server_tool_use",
    "nonsense",
]
FIELDS = [
    "text",
    "source",
    "id",
    "name",
    "input",
    "tool_use_id",
    "content",
    "is_error",
    "cache_control",
    "thinking",
    "signature",
]
source = st.fixed_dictionaries(
    {"type": st.sampled_from(["base64", "url", "text", "file", "content", "x"])},
    optional={
        "media_type": st.sampled_from(["image/png", "application/pdf", "text/plain"]),
        "data": st.text(max_size=8),
        "url": st.text(max_size=8),
    },
)
block = st.builds(
    lambda kind, extra, src: {"type": kind, **extra, **({"source": src} if src is not None else {})},
    st.sampled_from(BLOCK_TYPES),
    st.dictionaries(st.sampled_from(FIELDS), json_value | st.text(min_size=1, max_size=8), max_size=4),
    st.none() | source,
)
text_block = st.builds(lambda t: {"type": "text", "text": t}, st.text(min_size=1, max_size=8))
content = st.one_of(
    st.text(min_size=1, max_size=10),
    st.lists(text_block | block, min_size=1, max_size=4),
    st.lists(block | json_value, max_size=4),
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "user", "assistant", "system"]), "content": content}
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` three times in four."""
    return st.integers(0, 3).flatmap(lambda i: bad if i == 0 else good)


tool = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=6),
        "input_schema": mostly(st.just({"type": "object"}), json_value),
    },
    optional={
        "type": st.sampled_from(["custom", "web_search_20250305", "bash_20250124"]),
        "description": st.text(max_size=6),
    },
)
body = st.fixed_dictionaries(
    {
        "model": st.sampled_from([NATIVE, TRANSLATED]),
        "max_tokens": mostly(st.integers(1, 5000), json_value),
        "messages": mostly(st.lists(message, min_size=1, max_size=4), json_value),
    },
    optional={
        "system": st.one_of(st.text(max_size=10), st.lists(text_block | block, max_size=2), json_value),
        "tools": mostly(st.lists(tool, max_size=2), json_value),
        "tool_choice": mostly(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["auto", "any", "tool", "none", "x"])},
                optional={"name": st.text(max_size=5), "disable_parallel_tool_use": st.booleans()},
            ),
            json_value,
        ),
        "metadata": mostly(
            st.dictionaries(st.sampled_from(["user_id", "task", "team"]), st.text(max_size=5)), json_value
        ),
        "stop_sequences": mostly(st.lists(st.text(min_size=1, max_size=4), max_size=3), json_value),
        "thinking": mostly(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["enabled", "disabled"])},
                optional={"budget_tokens": st.integers(0, 5000)},
            ),
            json_value,
        ),
        "temperature": mostly(st.floats(0, 1), json_value),
        "top_k": st.integers(0, 50),
        "stream": st.booleans(),
        "service_tier": st.sampled_from(["auto", "standard_only"]),
    },
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Messages]:
    claude, openai_fake = FakeAnthropic().start(), FakeOpenAI().start()
    cfg = messages_config(claude, openai_fake, Path(tmp_path_factory.mktemp("messages-fuzz")))
    with RunningGateway(cfg) as gw:
        m = Messages(gw.url)
        yield m
        m.close()
    claude.stop()
    openai_fake.stop()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(doc=body)
def test_generated_messages_requests_get_an_answer_or_an_anthropic_shaped_4xx(
    api: Messages, doc: dict[str, Any]
) -> None:
    if doc.get("stream") is True:
        r, _ = api.stream(doc)
    else:
        r = api.post(doc)
    assert r.status_code < 500, (doc, r.status_code, r.text if not r.is_stream_consumed else "")
    if r.status_code >= 400:
        assert is_anthropic_error(r), (doc, r.text)
    elif doc.get("stream") is not True:
        assert r.json()["type"] == "message", r.text
