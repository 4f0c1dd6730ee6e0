"""Schemathesis against the gateway's own OpenAPI schema (every public and admin operation), over real
sockets to a running ``pointsman serve``: schema-valid and schema-violating requests, with no key, a client
key, a scoped client key, the admin key and a wrong key. Every answer is a 2xx or an OpenAI-shaped 4xx (in
Anthropic's shape for its Messages API) — never a 5xx, a dropped connection or a hang — and the server is healthy
afterwards.

Quick profile in the default tier (a few hundred cases); the thorough one (thousands) in the slow tier.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.clients.matrix import run_python_driver
from tests.gateway_runner import GatewayProcess
from tests.reliability.probes import CLIENT, MSG


def fuzz(gw: GatewayProcess, profile: str, timeout_s: float) -> dict[str, Any]:
    """The fuzzer's run against ``gw`` (``tests/reliability/schema_fuzz.py``, in its own process)."""
    run = run_python_driver("tests.reliability.schema_fuzz", gw.url, profile, timeout_s=timeout_s)
    print(f"\nschemathesis ({profile}): {run['cases']} cases; statuses {run['statuses']}")
    return run


def assert_healthy(gw: GatewayProcess) -> None:
    assert gw.proc is not None and gw.proc.poll() is None, "the gateway died"
    assert httpx.get(gw.url + "/healthz", timeout=10).status_code == 200
    assert httpx.get(gw.url + "/readyz", timeout=10).status_code == 200
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers=CLIENT,
        json={"model": "gpt-4o-mini", "messages": MSG},
        timeout=10,
    )
    assert r.status_code < 500, r.text
    log = gw.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]


def test_schemathesis_quick_profile_finds_no_5xx_and_only_openai_shaped_errors(
    fuzz_gateway: GatewayProcess,
) -> None:
    run = fuzz(fuzz_gateway, "quick", timeout_s=600)
    assert run["cases"] >= 300
    assert not run["failures"], f"{len(run['failures'])} failures:\n" + "\n".join(run["failures"][:20])
    assert_healthy(fuzz_gateway)


@pytest.mark.slow
def test_schemathesis_thorough_profile_finds_no_5xx_and_only_openai_shaped_errors(
    fuzz_gateway: GatewayProcess,
) -> None:
    run = fuzz(fuzz_gateway, "thorough", timeout_s=3600)
    assert run["cases"] >= 3000
    assert not run["failures"], f"{len(run['failures'])} failures:\n" + "\n".join(run["failures"][:20])
    assert_healthy(fuzz_gateway)
