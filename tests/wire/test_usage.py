"""Usage as OpenAI reports it: chat/completions/embeddings ``usage``, Responses API usage."""

from __future__ import annotations

import pytest

from wire.usage import Usage, parse_usage, usage_from_response


def test_chat_usage_with_cached_and_reasoning_details() -> None:
    u = parse_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 7,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
    )
    assert u == Usage(10, 7, 4, 5)


def test_responses_usage() -> None:
    u = parse_usage(
        {
            "input_tokens": 9,
            "output_tokens": 3,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens_details": {"reasoning_tokens": 1},
        }
    )
    assert u == Usage(9, 3, 2, 1)


def test_embeddings_usage_has_no_completion_tokens() -> None:
    assert parse_usage({"prompt_tokens": 8, "total_tokens": 8}) == Usage(8, 0)


def test_details_never_exceed_their_totals_and_bad_detail_numbers_count_zero() -> None:
    u = parse_usage(
        {
            "prompt_tokens": 2,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 5},
            "completion_tokens_details": {"reasoning_tokens": True},
        }
    )
    assert u == Usage(2, 3, 2, 0)


@pytest.mark.parametrize("bad", [-1, "3", None, 2.5, True])
@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens", "input_tokens", "output_tokens"])
def test_a_usage_whose_input_or_output_count_cannot_be_read_is_no_usage(field: str, bad: object) -> None:
    other = {"prompt_tokens": "completion_tokens", "completion_tokens": "prompt_tokens"}.get(field)
    other = other or {"input_tokens": "output_tokens", "output_tokens": "input_tokens"}[field]
    assert parse_usage({field: bad, other: 4}) is None


def test_a_count_left_out_is_zero() -> None:
    assert parse_usage({"prompt_tokens": 8, "total_tokens": 8}) == Usage(8, 0)  # an embeddings usage


def test_not_usage() -> None:
    assert parse_usage(None) is None
    assert parse_usage({"total_tokens": 3}) is None


def test_usage_of_a_response_body_or_a_responses_event() -> None:
    assert usage_from_response({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}) == Usage(1, 1)
    event = {"type": "response.completed", "response": {"usage": {"input_tokens": 4, "output_tokens": 2}}}
    assert usage_from_response(event) == Usage(4, 2)
    assert usage_from_response([1]) is None
    assert Usage(4, 2).total_tokens == 6


LITELLM_ANTHROPIC_USAGE = {
    "prompt_tokens": 10000,  # litellm: Anthropic's input_tokens + cache reads + cache writes
    "completion_tokens": 2000,
    "prompt_tokens_details": {
        "cached_tokens": 4000,
        "cache_creation_tokens": 3000,
        "cache_creation_token_details": {
            "ephemeral_5m_input_tokens": 2000,
            "ephemeral_1h_input_tokens": 1000,
        },
    },
    "cache_creation_input_tokens": 3000,
    "cache_read_input_tokens": 4000,
}


def test_anthropic_usage_through_litellm_keeps_cache_reads_and_both_cache_writes_apart() -> None:
    u = parse_usage(LITELLM_ANTHROPIC_USAGE)
    assert u is not None
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (
        10000,
        4000,
        3000,
        1000,
    )


def test_audio_and_image_details_and_the_reported_service_tier() -> None:
    doc = {
        "service_tier": "flex",
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "prompt_tokens_details": {"audio_tokens": 30, "image_tokens": 20},
            "completion_tokens_details": {"audio_tokens": 10},
        },
    }
    u = usage_from_response(doc)
    assert u is not None
    assert (u.audio_input_tokens, u.image_input_tokens, u.audio_output_tokens, u.service_tier) == (
        30,
        20,
        10,
        "flex",
    )
    assert usage_from_response({**doc, "service_tier": "default"}).service_tier == "standard"  # type: ignore[union-attr]
    assert usage_from_response({**doc, "service_tier": "something-new"}).service_tier == "standard"  # type: ignore[union-attr]


def test_details_never_exceed_their_totals() -> None:
    u = parse_usage(
        {"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 9}}
    )
    assert u is not None and u.cached_input_tokens == 5 and u.cache_write_tokens == 0


def test_anthropics_own_usage_reads_as_the_same_token_classes_litellm_reports_for_it() -> None:
    native = {
        "input_tokens": 3000,  # Anthropic's: neither cache reads nor cache writes
        "output_tokens": 2000,
        "cache_read_input_tokens": 4000,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 1000},
    }
    assert parse_usage(native) == parse_usage(LITELLM_ANTHROPIC_USAGE)


def test_a_messages_stream_usage_is_message_start_with_message_delta_totals_over_it() -> None:
    from wire.usage import merge_messages_usage

    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 1}},
    }
    so_far = merge_messages_usage(None, start)
    delta = {"type": "message_delta", "usage": {"output_tokens": 9, "input_tokens": None}}
    assert merge_messages_usage(so_far, delta) == {
        "input_tokens": 5,
        "cache_read_input_tokens": 2,
        "output_tokens": 9,
    }
    assert merge_messages_usage(so_far, {"type": "ping"}) is None


def test_a_message_that_counts_no_token_reported_no_usage() -> None:
    zeros = {"type": "message", "usage": {"input_tokens": 0, "output_tokens": 0}}
    assert usage_from_response(zeros) is None  # a translated answer whose upstream sent no usage
    assert usage_from_response({**zeros, "usage": {"input_tokens": 3, "output_tokens": 0}}) == Usage(3, 0)
