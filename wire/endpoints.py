"""Endpoint names (the path under ``/v1``) and what each one accepts."""

from __future__ import annotations

CHAT = "chat/completions"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"

REQUIRED_FIELD = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input", RESPONSES: "input"}
"""The body field each endpoint cannot do without."""
STREAMABLE = frozenset({CHAT, COMPLETIONS, RESPONSES})
USAGE_OPTION = frozenset({CHAT, COMPLETIONS})
"""Endpoints that report usage in a stream only when asked (``stream_options.include_usage``); the Responses
API always sends it in ``response.completed``."""
