"""The one upstream-call builder (no sockets): the body every target of a request is sent."""

from __future__ import annotations

from typing import Any

import orjson

from routing.models import ModelTable, ResolvedModel
from routing.upstream_call import CallSpec, build_call
from serving.backend import UpstreamCall
from serving.config import ModelConfig, OpenAIBackendConfig, VLLMBackendConfig
from serving.http_backend import OpenAIHTTPBackend
from wire.json_object import JsonObject

URL = "http://127.0.0.1:9/v1"
OPENAI = OpenAIHTTPBackend("up", OpenAIBackendConfig(type="openai", base_url=URL))
VLLM = OpenAIHTTPBackend("gpu", VLLMBackendConfig(type="vllm", endpoints=[URL]))


def target(upstream: str = "upstream-id") -> ResolvedModel:
    table = ModelTable({"client-name": ModelConfig(backend="up", upstream_model=upstream)})
    resolved = table.resolve("client-name")
    assert resolved is not None
    return resolved


def spec(
    doc: dict[str, Any],
    *,
    endpoint: str = "chat/completions",
    stream: bool = False,
    defaults: dict[str, Any] | None = None,
) -> CallSpec:
    return CallSpec(endpoint, JsonObject.of(doc), defaults or {}, stream, "rid-1")


def sent(call: UpstreamCall) -> dict[str, Any]:
    """The document the upstream receives."""
    doc: dict[str, Any] = orjson.loads(call.body)
    return doc


def test_the_model_is_rewritten_to_the_targets_upstream_id_and_the_client_document_is_untouched() -> None:
    doc = {"model": "client-name", "messages": [{"role": "user", "content": "hi"}]}
    call = build_call(spec(doc), target(), OPENAI, 7.5)
    assert sent(call)["model"] == "upstream-id"
    assert doc["model"] == "client-name"
    assert (call.endpoint, call.stream, call.timeout_s, call.request_id) == (
        "chat/completions",
        False,
        7.5,
        "rid-1",
    )


def test_route_defaults_apply_under_the_clients_own_values() -> None:
    call = build_call(
        spec({"model": "m", "temperature": 0.1}, defaults={"temperature": 0.9, "top_p": 0.5}),
        target(),
        OPENAI,
        1.0,
    )
    assert (sent(call)["temperature"], sent(call)["top_p"]) == (0.1, 0.5)


def test_streams_that_can_carry_usage_ask_for_it_keeping_the_clients_stream_options() -> None:
    call = build_call(spec({"model": "m", "stream_options": {"x": 1}}, stream=True), target(), OPENAI, 1.0)
    assert sent(call)["stream_options"] == {"x": 1, "include_usage": True}
    plain = build_call(spec({"model": "m"}, stream=True), target(), OPENAI, 1.0)
    assert sent(plain)["stream_options"] == {"include_usage": True}


def test_usage_is_not_asked_for_on_unary_calls_or_on_the_responses_endpoint() -> None:
    assert "stream_options" not in sent(build_call(spec({"model": "m"}), target(), OPENAI, 1.0))
    responses = build_call(spec({"model": "m"}, endpoint="responses", stream=True), target(), OPENAI, 1.0)
    assert "stream_options" not in sent(responses)


def test_metadata_is_left_out_only_for_backends_that_do_not_accept_it() -> None:
    doc = {"model": "m", "metadata": {"task": "t"}}
    assert sent(build_call(spec(doc), target(), OPENAI, 1.0))["metadata"] == {"task": "t"}
    assert "metadata" not in sent(build_call(spec(doc), target(), VLLM, 1.0))
    assert doc["metadata"] == {"task": "t"}


def test_the_clients_text_is_kept_byte_for_byte_around_the_edits() -> None:
    text = b'{ "seed" : 123456789012345678901234567890, "model": "client-name",\n "temperature": 1.0E0 }'
    body = JsonObject(text, orjson.loads(text))
    call = build_call(CallSpec("chat/completions", body, {"top_p": 0.5}, False, "r"), target(), OPENAI, 1.0)
    assert call.body == text.replace(b'"client-name"', b'"upstream-id"')[:-1] + b',"top_p":0.5}'


def test_a_call_that_changes_nothing_sends_the_clients_own_bytes() -> None:
    text = b'{"model": "upstream-id", "messages": []}'
    body = JsonObject(text, orjson.loads(text))
    assert build_call(CallSpec("chat/completions", body, {}, False, "r"), target(), OPENAI, 1.0).body is text
