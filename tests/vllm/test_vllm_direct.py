"""Smoke test of the `vllm` tier fixture: talk to the real vLLM server directly with the openai SDK."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import openai
import pytest

if TYPE_CHECKING:
    from tests.vllm.conftest import VLLMServer

pytestmark = pytest.mark.vllm

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello"},
]


def _post(server: VLLMServer, path: str, body: dict[str, Any]) -> tuple[int, str]:
    req = urllib.request.Request(
        f"{server.base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


@pytest.fixture
def client(vllm_server: VLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=vllm_server.api_base, api_key="unused", max_retries=0, timeout=60) as c:
        yield c


def _prompt_tokens(server: VLLMServer) -> int:
    status, body = _post(server, "/tokenize", {"model": server.model, "messages": MESSAGES})
    assert status == 200, body
    count: int = json.loads(body)["count"]
    return count


def test_models_lists_base_and_lora(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    ids = {m.id for m in client.models.list()}
    assert {vllm_server.model, vllm_server.lora} <= ids


def test_chat_completion_usage_is_exact(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    n_prompt = _prompt_tokens(vllm_server)
    r = client.chat.completions.create(
        model=vllm_server.model,
        messages=MESSAGES,
        max_tokens=16,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert r.model == vllm_server.model
    assert isinstance(r.choices[0].message.content, str)
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
        n_prompt,
        16,
        n_prompt + 16,
    )


def test_streaming_usage_chunk(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    n_prompt = _prompt_tokens(vllm_server)
    usage = None
    n_content_chunks = 0
    with client.chat.completions.create(
        model=vllm_server.model,
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    ) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                assert chunk.choices == []
                usage = chunk.usage
            n_content_chunks += sum(1 for c in chunk.choices if c.delta.content)
    assert n_content_chunks >= 1
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (n_prompt, 8, n_prompt + 8)


def test_lora_model_id(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    r = client.chat.completions.create(
        model=vllm_server.lora,
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert r.model == vllm_server.lora
    assert r.usage is not None and r.usage.completion_tokens == 8


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=4)


def test_runtime_lora_load_and_unload(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    name = vllm_server.lora2
    status, body = _post(
        vllm_server, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": vllm_server.lora_path}
    )
    assert status == 200, body
    try:
        assert name in {m.id for m in client.models.list()}
        r = client.chat.completions.create(model=name, messages=MESSAGES, max_tokens=4, temperature=0)
        assert r.model == name
    finally:
        status, body = _post(vllm_server, "/v1/unload_lora_adapter", {"lora_name": name})
        assert status == 200, body
    assert name not in {m.id for m in client.models.list()}


def test_metrics(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    client.chat.completions.create(model=vllm_server.model, messages=MESSAGES, max_tokens=4)
    text = vllm_server.metrics_text()
    for family in (
        "vllm:num_requests_running",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds",
        "vllm:e2e_request_latency_seconds",
    ):
        assert family in text, family
    assert 'model_name="tiny"' in text
