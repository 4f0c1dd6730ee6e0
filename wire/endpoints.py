"""Endpoint names (the path under ``/v1``) and what each one accepts."""

from __future__ import annotations

CHAT = "chat/completions"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"
MESSAGES = "messages"
"""Anthropic's Messages API (``wire.anthropic``): the other ingress protocol."""
COUNT_TOKENS = "messages/count_tokens"
"""Anthropic's token counting for a Messages request (nothing is generated)."""

REQUIRED_FIELD = {
    CHAT: "messages",
    COMPLETIONS: "prompt",
    EMBEDDINGS: "input",
    RESPONSES: "input",
    MESSAGES: "messages",
    COUNT_TOKENS: "messages",
}
"""The body field each endpoint cannot do without."""
STREAMABLE = frozenset({CHAT, COMPLETIONS, RESPONSES, MESSAGES})
ANTHROPIC = frozenset({MESSAGES, COUNT_TOKENS})
"""Endpoints in Anthropic's wire format (requests, answers, events and errors: ``wire.anthropic``)."""
OUTPUT_LIMIT: dict[str, tuple[str, ...]] = {
    CHAT: ("max_completion_tokens", "max_tokens"),
    COMPLETIONS: ("max_tokens",),
    RESPONSES: ("max_output_tokens",),
    MESSAGES: ("max_tokens",),
}
"""The members that bound what a request of each generating endpoint generates (the larger one when it names two).
Embeddings and token counting generate nothing and have none."""
USAGE_OPTION = frozenset({CHAT, COMPLETIONS})
"""Endpoints that report usage in a stream only when asked (``stream_options.include_usage``); the Responses
API always sends it in ``response.completed``."""
