"""Usage as OpenAI reports it: chat/completions/embeddings ``usage``, Responses API usage."""

from __future__ import annotations

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


def test_details_never_exceed_their_totals_and_bad_numbers_count_zero() -> None:
    u = parse_usage(
        {
            "prompt_tokens": 2,
            "completion_tokens": -1,
            "prompt_tokens_details": {"cached_tokens": 5},
            "completion_tokens_details": {"reasoning_tokens": True},
        }
    )
    assert u == Usage(2, 0, 2, 0)


def test_not_usage() -> None:
    assert parse_usage(None) is None
    assert parse_usage({"total_tokens": 3}) is None


def test_usage_of_a_response_body_or_a_responses_event() -> None:
    assert usage_from_response({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}) == Usage(1, 1)
    event = {"type": "response.completed", "response": {"usage": {"input_tokens": 4, "output_tokens": 2}}}
    assert usage_from_response(event) == Usage(4, 2)
    assert usage_from_response([1]) is None
    assert Usage(4, 2).total_tokens == 6
