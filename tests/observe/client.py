"""The request every observability test sends, and the key it sends it with."""

from __future__ import annotations

import httpx

from tests.conftest import CLIENT_KEY
from tests.gateway_runner import RunningGateway

PROMPT = "secret prompt text"


def chat(gw: RunningGateway, model: str = "gpt-4o-mini", **headers: str) -> httpx.Response:
    """A non-streamed chat completion for ``model`` carrying ``PROMPT`` (which no export may contain)."""
    return httpx.post(
        gw.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": PROMPT}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}", **headers},
        timeout=10,
    )
