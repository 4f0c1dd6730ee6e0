"""The official Anthropic Node SDK (@anthropic-ai/sdk) through the gateway, scenario by scenario: one Node
process runs them all; each test checks one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.anthropic_expected import SERVED, TOOL_INPUT, WEATHER, inputs
from tests.clients.expected import AFTER_TOOL
from tests.clients.node_runner import run_driver
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.gateway_runner import RunningGateway


def expected() -> dict[str, Any]:
    out: dict[str, Any] = {}
    call = {"name": WEATHER["name"], "input": TOOL_INPUT}
    for model, served in SERVED.items():
        usage = list(served.usage)
        out[f"create:{model}"] = {
            "text": served.text,
            "usage": usage,
            "stop_reason": "end_turn",
            "model": model,
        }
        out[f"stream:{model}"] = {
            "text": served.text,
            "final": served.text,
            "usage": usage,
            "stop_reason": "end_turn",
        }
        out[f"raw_stream:{model}"] = {"first": "message_start", "last": "message_stop", "message_delta": True}
        out[f"tools:{model}"] = {"stop_reason": "tool_use", "call": call, "after": AFTER_TOOL}
        out[f"stream_tools:{model}"] = {"stop_reason": "tool_use", "call": call}
        out[f"count_tokens:{model}"] = {"positive": True}
        out[f"headers:{model}"] = {"backend": served.backend, "model": model, "cost": True}

    def error(name: str, status: int, type_: str) -> dict[str, Any]:
        return {"error": name, "status": status, "type": type_}

    out["wrong_key"] = error("AuthenticationError", 401, "authentication_error")
    out["unknown_model"] = error("NotFoundError", 404, "not_found_error")
    out["out_of_scope"] = error("PermissionDeniedError", 403, "permission_error")
    out["untranslatable"] = error("BadRequestError", 400, "invalid_request_error")
    out["overloaded"] = error("OverloadedError", 529, "overloaded_error")
    out["rate_limited"] = error("RateLimitError", 429, "rate_limit_error")
    out["stream_failure"] = {"error": "APIError", "type": "overloaded_error"}
    return out


EXPECTED = expected()


@pytest.fixture(scope="module")
def observed(claude_gateway: RunningGateway, claude_upstream: FakeAnthropic) -> dict[str, Any]:
    return run_driver("anthropic_node.mjs", inputs(claude_gateway.url))


@pytest.mark.parametrize("scenario", EXPECTED)
def test_anthropic_node(scenario: str, observed: dict[str, Any]) -> None:
    assert observed.get(scenario) == EXPECTED[scenario], f"anthropic-node / {scenario}"
