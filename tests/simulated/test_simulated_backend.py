"""A gateway whose models are ``type: simulated`` backends, driven with the official OpenAI SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import RunningGateway

FAST = {"median_ms": 5, "p95_ms": 10}


def config() -> dict[str, object]:
    return {
        "admin_key": ADMIN_KEY,
        "backends": {
            "sim": {"type": "simulated", "first_token": FAST, "tokens_per_s": 5000, "answer_words": 12},
            "slow": {
                "type": "simulated",
                "first_token": {"median_ms": 400, "p95_ms": 400},
                "tokens_per_s": 20,
            },
            "broken": {"type": "simulated", "first_token": FAST, "error_rate": 1.0, "error_status": 503},
            "judge": {"type": "simulated", "first_token": FAST, "judge": True},
        },
        "models": {
            "sim-model": {"backend": "sim"},
            "slow-model": {"backend": "slow"},
            "broken-model": {"backend": "broken"},
            "judge-model": {"backend": "judge"},
        },
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
        "routes": [
            {
                "name": "slow",
                "match": {"model": "slow-model"},
                "targets": [{"model": "slow-model"}],
                "timeout_s": 0.3,
            }
        ],
    }


@pytest.fixture(scope="module")
def gw() -> Iterator[RunningGateway]:
    with RunningGateway(config()) as g:
        yield g


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "Explain the refund for the unused seat"}]


def test_chat_answers_with_the_requests_words_and_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-model", messages=MESSAGES)  # type: ignore[arg-type]
    text = r.choices[0].message.content or ""
    assert "refund" in text.split()
    assert r.usage is not None and r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens > 0


def test_the_same_request_gets_the_same_answer(client: openai.OpenAI) -> None:
    a = client.chat.completions.create(model="sim-model", messages=MESSAGES)  # type: ignore[arg-type]
    b = client.chat.completions.create(model="sim-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert a.choices[0].message.content == b.choices[0].message.content


def test_a_streamed_chat_carries_the_same_text_and_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="sim-model", messages=MESSAGES)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="sim-model",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=3)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "length"
    assert len((r.choices[0].message.content or "").split()) == 3


def test_completions_answer_unary_and_streamed(client: openai.OpenAI) -> None:
    r = client.completions.create(model="sim-model", prompt="Describe the webhook that fires twice")
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="sim-model", prompt="Describe the webhook that fires twice", stream=True
        )
        if c.choices
    )
    assert r.choices[0].text == streamed
    assert "webhook" in streamed


def test_responses_stream_ends_with_usage(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="sim-model", input="Draft an update on search", stream=True))
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.usage is not None and done.response.usage.output_tokens == 12
    assert "search" in done.response.output_text


def test_embeddings_are_one_vector_per_input(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="sim-model", input=["one text", "another text"])
    assert [len(d.embedding) for d in r.data] == [64, 64]
    assert r.usage.prompt_tokens == 4


def test_the_error_rate_fails_calls_with_the_configured_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="broken-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert "simulated upstream error (503)" in err.value.message  # routing retried, then answered 502


def test_a_call_slower_than_the_routes_timeout_times_out(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="slow-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.status_code == 504
    assert time.monotonic() - started < 2


def test_a_simulated_judge_answers_a_comparison_with_a_verdict(client: openai.OpenAI) -> None:
    prompt = "[Request]\nrefund the seat\n\n[Answer 1]\nno idea\n\n[Answer 2]\nthe seat refund is done\n\nWhich answer is better?"
    r = client.chat.completions.create(model="judge-model", messages=[{"role": "user", "content": prompt}])
    assert '"winner": "2"' in (r.choices[0].message.content or "")


def test_a_self_hosted_simulated_model_is_priced_by_gpu_hour() -> None:
    cfg = config()
    cfg["backends"]["own"] = {
        "type": "simulated",
        "first_token": FAST,
        "self_hosted": True,
        "gpu_hour_usd": "3.60",
    }  # type: ignore[index]
    cfg["models"]["own-model"] = {"backend": "own"}  # type: ignore[index]
    cfg["accounting"] = {"pricing": {"own-model": {"throughput_tokens_per_s": 1000}}}
    with RunningGateway(cfg) as g, openai.OpenAI(base_url=g.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        r = c.chat.completions.with_raw_response.create(model="own-model", messages=MESSAGES)  # type: ignore[arg-type]
        usage = r.parse().usage
        assert usage is not None
        # $3.60 an hour at 1000 tokens/s is $0.000001 a token.
        assert float(r.headers["x-pointsman-cost-usd"]) == pytest.approx(usage.total_tokens * 1e-6)
