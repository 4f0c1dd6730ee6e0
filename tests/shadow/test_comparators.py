"""Each comparator on hand-made outputs, and answers assembled from SSE events (no gateway needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from routing.shadow import comparators as cmp
from routing.shadow.config import ComparatorConfig, ShadowConfig
from routing.shadow.extract import Output, ToolCall, from_body, from_events

_ADAPTER: TypeAdapter[Any] = TypeAdapter(ComparatorConfig)


def score(
    spec: dict[str, Any] | str,
    primary: Output | str,
    candidate: Output | str,
    request: dict[str, Any] | None = None,
) -> cmp.Scored:
    cfg = _ADAPTER.validate_python({"type": spec} if isinstance(spec, str) else spec)
    c = cmp.build(cfg, 5.0)
    p = Output(primary) if isinstance(primary, str) else primary
    q = Output(candidate) if isinstance(candidate, str) else candidate
    return asyncio.run(c.score(cmp.PairInput("chat/completions", request or {}, p, q)))


def test_exact_needs_identical_text() -> None:
    assert score("exact", "Paris.", "Paris.").value == 1.0
    assert score("exact", "Paris.", "paris").value == 0.0


def test_normalized_ignores_case_whitespace_and_punctuation() -> None:
    assert score("normalized", "The  answer: Paris!", "the answer paris").value == 1.0
    assert score("normalized", "Paris", "Lyon").value == 0.0


def test_json_valid_accepts_fenced_json_and_scores_the_primary_as_baseline() -> None:
    s = score("json_valid", "not json", '```json\n{"a": 1}\n```')
    assert (s.value, s.baseline) == (1.0, 0.0)


def test_json_schema_uses_the_requests_response_format() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    request = {"response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}}
    s = score("json_schema", '{"total": 3}', '{"total": "three"}', request)
    assert (s.value, s.baseline) == (0.0, 1.0)


def test_json_schema_uses_a_configured_schema_and_skips_requests_without_one() -> None:
    spec = {"type": "json_schema", "schema": {"type": "array"}}
    assert score(spec, "[]", "[1, 2]").value == 1.0
    assert score("json_schema", "[]", "[1, 2]").value is None


def test_json_equal_is_semantic_and_can_compare_chosen_fields() -> None:
    assert score("json_equal", '{"a": 1, "b": [1, 2]}', '{"b": [1, 2.0], "a": 1}').value == 1.0
    assert score("json_equal", '{"a": true}', '{"a": 1}').value == 0.0
    spec = {"type": "json_equal", "fields": ["invoice.total", "currency"]}
    assert (
        score(spec, '{"invoice": {"total": 10, "id": 1}}', '{"invoice": {"total": 10.0, "id": 2}}').value
        == 1.0
    )
    assert score(spec, '{"invoice": {"total": 10}}', '{"invoice": {"total": 11}}').value == 0.0
    assert score(spec, "oops", "{}").value is None


def test_label_extracts_by_regex_group() -> None:
    spec = {"type": "label", "pattern": r"label:\s*(\w+)"}
    assert score(spec, "Label: Spam", "I think label: spam.").value == 1.0
    assert score(spec, "label: spam", "label: ham").value == 0.0
    assert score(spec, "label: spam", "no idea").value == 0.0
    assert score(spec, "no idea", "label: spam").value is None


def test_label_rejects_an_invalid_regex_at_config_time() -> None:
    with pytest.raises(ValidationError, match="invalid regex"):
        _ADAPTER.validate_python({"type": "label", "pattern": "("})


def test_tool_calls_compare_functions_and_arguments_as_json() -> None:
    a = Output(tool_calls=[ToolCall("get_weather", '{"city": "Paris", "unit": "c"}'), ToolCall("time", "{}")])
    b = Output(tool_calls=[ToolCall("time", ""), ToolCall("get_weather", '{"unit":"c","city":"Paris"}')])
    c = Output(tool_calls=[ToolCall("get_weather", '{"city": "Lyon", "unit": "c"}'), ToolCall("time", "{}")])
    assert score("tool_calls", a, b).value == 1.0
    assert score({"type": "tool_calls", "order_matters": True}, a, b).value == 0.0
    assert score("tool_calls", a, c).value == 0.0
    assert score("tool_calls", "plain", "text").value is None


def test_token_f1_is_squad_style() -> None:
    # tokens after dropping articles/punctuation: [cat, sat] vs [cat, sat, down]: p=2/3, r=1 -> f1=0.8
    assert score("token_f1", "The cat sat.", "a cat sat down").value == pytest.approx(0.8)


def test_rouge_l_uses_the_longest_common_subsequence() -> None:
    # LCS of "a b c d e" and "a c e f" is "a c e" (3): p=3/4, r=3/5 -> f=2pr/(p+r)=2/3
    assert score("rouge_l", "a b c d e", "a c e f").value == pytest.approx(2 / 3)


def test_custom_scorers_by_import_path_sync_and_async() -> None:
    spec = {
        "type": "custom",
        "path": "tests.shadow.scorers:shorter_is_fine",
        "kind": "pass",
        "options": {"slack": 1},
    }
    assert score(spec, "abcd", "abcde").value == 1.0
    assert score(spec, "abcd", "abcdef").value == 0.0
    ratio = {"type": "custom", "name": "len", "path": "tests.shadow.scorers:length_ratio"}
    assert score(ratio, "abcd", "ab").value == 0.5


def test_a_custom_scorer_that_cannot_be_imported_fails_per_pair_not_at_startup() -> None:
    cfg = _ADAPTER.validate_python({"type": "custom", "path": "tests.shadow.nowhere:fn"})
    c = cmp.build(cfg, 5.0)
    with pytest.raises(RuntimeError, match="cannot load"):
        asyncio.run(c.score(cmp.PairInput("chat/completions", {}, Output("a"), Output("b"))))


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ('{"winner": "2", "reason": "x"}', "2"),
        ('```json\n{"winner": "tie"}\n```', "tie"),
        ('After thought, winner: "1".', "1"),
    ],
)
def test_judge_verdicts_are_parsed_leniently(reply: str, winner: str) -> None:
    assert cmp.parse_verdict(reply) == winner


def test_comparator_names_must_be_unique_per_route() -> None:
    with pytest.raises(ValidationError, match="duplicate comparator names"):
        ShadowConfig.model_validate({"model": "c", "compare": ["exact", {"type": "exact"}]})


def test_streamed_tool_call_deltas_are_merged_by_index() -> None:
    def ev(delta: dict[str, Any]) -> bytes:
        return (
            b"data: "
            + orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            + b"\n\n"
        )

    events = [
        ev({"role": "assistant", "content": None}),
        ev(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_", "arguments": ""},
                    }
                ]
            }
        ),
        ev({"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": '{"city": '}}]})
        + ev({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}\n\ndata: [DONE]\n\n',
    ]
    out, usage = from_events("chat/completions", events)
    assert [t.as_dict() for t in out.tool_calls] == [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (5, 3)


def test_responses_api_output_text_and_function_calls() -> None:
    body = {
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
            {"type": "function_call", "name": "f", "arguments": "{}"},
        ]
    }
    out = from_body("responses", body)
    assert out.text == "Hi" and [t.name for t in out.tool_calls] == ["f"]


def test_streamed_responses_api_answer_is_assembled_from_its_events() -> None:
    def ev(kind: str, **data: Any) -> bytes:
        return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"

    events = [ev("response.output_text.delta", delta="Hel"), ev("response.output_text.delta", delta="lo")]
    assert from_events("responses", events)[0].text == "Hello"
    done = {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hello!"}]}],
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    out, usage = from_events("responses", [*events, ev("response.completed", response=done)])
    assert out.text == "Hello!" and usage is not None and usage.output_tokens == 2


def test_streamed_legacy_completion_text_is_concatenated() -> None:
    events = [
        b'data: {"choices": [{"index": 0, "text": "a"}]}\n\n',
        b'data: {"choices": [{"index": 0, "text": "b", "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n',
    ]
    out, _ = from_events("completions", events)
    assert (out.text, out.finish_reason) == ("ab", "stop")


def test_a_mid_stream_error_event_marks_the_answer_incomplete() -> None:
    events = [
        b'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n',
        b'data: {"error": {"message": "upstream closed", "type": "upstream_error"}}\n\ndata: [DONE]\n\n',
    ]
    out, _ = from_events("chat/completions", events)
    assert out.text == "par" and out.error == "upstream closed"
