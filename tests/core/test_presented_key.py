"""The one parser of a presented key (no sockets): which headers carry it, and in which order."""

from __future__ import annotations

from gateway.keys import presented_key


def test_a_bearer_token_is_the_key() -> None:
    assert presented_key("Bearer sk-1", None) == "sk-1"
    assert presented_key("bearer  sk-1 ", None) == "sk-1"


def test_the_bearer_token_wins_over_the_api_key_header() -> None:
    assert presented_key("Bearer sk-1", "sk-2") == "sk-1"


def test_the_api_key_header_is_used_without_a_bearer_token() -> None:
    assert presented_key(None, "sk-2") == "sk-2"
    assert presented_key("Basic abc", "sk-2") == "sk-2"
    assert presented_key("Bearer ", "sk-2") == "sk-2"


def test_no_key_is_none() -> None:
    assert presented_key(None, None) is None
    assert presented_key("sk-1", None) is None  # a bare key without the scheme is not accepted
    assert presented_key("Bearer", "  ") is None
