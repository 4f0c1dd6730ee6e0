"""What Anthropic's own clients must get through the gateway, for the Python and Node SDK tests alike: a model
served natively by an Anthropic backend (the fake Anthropic API) and one served by an OpenAI-compatible backend
through translation (the fake OpenAI API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.clients.expected import MODEL, TEXT, TOOL_CALL, TOOL_RESULT, WEATHER_TOOL
from tests.conftest import ADMIN_KEY, CLIENT_KEY

NATIVE = "claude-haiku-4-5"
TRANSLATED = MODEL
SCOPED_KEY = "sk-test-scoped-claude-0001"
"""May use only the native model."""
LIMITED_KEY = "sk-test-limited-0001"
"""One request per minute."""
ANTHROPIC_KEY = "sk-ant-test"
"""What the gateway presents to the fake Anthropic API."""


@dataclass(frozen=True)
class Served:
    model: str
    backend: str
    text: str
    usage: tuple[int, int]


SERVED = {
    NATIVE: Served(NATIVE, "anthropic", "Bonjour from Claude", (13, 9)),
    TRANSLATED: Served(TRANSLATED, "up", TEXT, (11, 7)),
}
WEATHER = {
    "name": WEATHER_TOOL["name"],
    "description": WEATHER_TOOL["description"],
    "input_schema": WEATHER_TOOL["parameters"],
}
TOOL_INPUT: dict[str, Any] = TOOL_CALL["arguments"]
"""What both fakes call the weather tool with."""


def gateway_config(anthropic_url: str, openai_url: str) -> dict[str, Any]:
    return {
        "admin_key": ADMIN_KEY,
        "backends": {
            "anthropic": {
                "type": "litellm",
                "provider": "anthropic",
                "api_key": ANTHROPIC_KEY,
                "api_base": anthropic_url,
            },
            "up": {"type": "openai", "base_url": openai_url, "api_key": "sk-upstream-secret"},
        },
        "models": {"claude-*": {"backend": "anthropic"}, TRANSLATED: {"backend": "up"}},
        "keys": [
            {"name": "app", "key": CLIENT_KEY, "team": "claude"},
            {"name": "scoped", "key": SCOPED_KEY, "team": "claude", "models": [NATIVE]},
            {"name": "limited", "key": LIMITED_KEY, "team": "claude"},
        ],
        "accounting": {"rate_limits": [{"key": "limited", "requests_per_min": 1}]},
        "routing": {"breaker": {"consecutive_failures": 10_000, "min_requests": 10_000}},
    }


def inputs(base_url: str) -> dict[str, Any]:
    """What the Node driver is given."""
    return {
        "baseURL": base_url,
        "key": CLIENT_KEY,
        "scopedKey": SCOPED_KEY,
        "limitedKey": LIMITED_KEY,
        "native": NATIVE,
        "translated": TRANSLATED,
        "tool": WEATHER,
        "toolResult": TOOL_RESULT,
    }
