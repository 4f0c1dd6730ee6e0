"""Shared pieces of the third-party consent tests: an in-house upstream and a third-party one, both real HTTP
fakes that record every body they receive, and a gateway config routing between them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI

OTHER_KEY = "sk-test-client-0002-other"
SOLO_KEY = "sk-test-client-0003-solo"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
APP = {"authorization": f"Bearer {CLIENT_KEY}"}
MSG = [{"role": "user", "content": "Summarize the churn of account 4711 (jane@example.com)."}]

HOUSE_MODELS = ["llama-a", "llama-b", "house-fail", "house-judge", "house-embed"]
PROVIDER_MODELS = ["gpt-x", "gpt-y", "provider-judge", "provider-embed"]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    """(in-house, third-party) fakes."""
    house, provider = FakeOpenAI(name="house").start(), FakeOpenAI(name="provider").start()
    yield house, provider
    house.stop()
    provider.stop()


def consent_config(house: FakeOpenAI, provider: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    """Team ``growth`` (key ``app``), team ``search`` (key ``other``) and a key without a team (``solo``);
    ``house`` is in-house (``third_party: false``), ``provider`` a third party (the openai default)."""
    cfg: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "backends": {
            "house": {"type": "openai", "base_url": house.url, "third_party": False},
            "provider": {"type": "openai", "base_url": provider.url, "api_key": "sk-provider"},
        },
        "models": {
            "llama-a": {"backend": "house"},
            "llama-b": {"backend": "house"},
            "house-fail": {"backend": "house", "upstream_model": "fake-fail_503"},
            "house-judge": {"backend": "house"},
            "house-embed": {"backend": "house"},
            "gpt-x": {"backend": "provider"},
            "gpt-y": {"backend": "provider"},
            "provider-judge": {"backend": "provider"},
            "provider-embed": {"backend": "provider"},
        },
        "keys": [
            {"name": "app", "key": CLIENT_KEY, "team": "growth"},
            {"name": "other", "key": OTHER_KEY, "team": "search"},
            {"name": "solo", "key": SOLO_KEY},
        ],
        "routes": [],
        "consent": {"third_party": "required", "approval_refresh_s": 0.1},
        "routing": {
            "breaker": {"consecutive_failures": 10_000, "error_rate": 1.0, "min_requests": 1_000_000},
            "backoff": {"base_s": 0.001, "max_s": 0.01},
        },
    }
    cfg.update(extra)
    return cfg


def chat(
    url: str, model: str, task: str | None = None, key: str = CLIENT_KEY, stream: bool = False, **kw: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if task is not None:
        headers["x-pointsman-task"] = task
    body: dict[str, Any] = {"model": model, "messages": MSG, "stream": stream, **kw}
    return httpx.post(url + "/v1/chat/completions", headers=headers, json=body, timeout=30)


def put_routes(url: str, routes: list[dict[str, Any]]) -> None:
    r = httpx.put(url + "/admin/routes", headers=ADMIN, json={"routes": routes}, timeout=30)
    assert r.status_code == 200, r.text


def decide(url: str, scope: str, name: str, approved: bool, by: str = "dana@example.com") -> dict[str, Any]:
    r = httpx.put(
        f"{url}/admin/{scope}s/{name}/consent",
        headers=ADMIN,
        json={"approved": approved, "by": by, "note": "DPA-7"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def pair(url: str, request_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The shadow pair of a request, once written."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = httpx.get(f"{url}/admin/shadow/pairs/{request_id}", headers=ADMIN, timeout=10)
        if r.status_code == 200:
            out: dict[str, Any] = r.json()
            return out
        time.sleep(0.05)
    raise AssertionError(f"no pair for {request_id} after {timeout}s")


def shadows_done(url: str, timeout: float = 30.0) -> None:
    """Wait until every sampled shadow has written its pair (its shadow, judge and embedding calls are over)."""
    deadline = time.time() + timeout
    counters: dict[str, int] = {}
    while time.time() < deadline:
        counters = httpx.get(url + "/admin/shadow/status", headers=ADMIN, timeout=10).json()["counters"]
        if counters["written"] >= counters["sampled"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"shadows still running after {timeout}s: {counters}")


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(p.split("=", 1) for p in line[len(name) + 1 : line.index("}")].split(","))
        if all(got.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def reached(fake: FakeOpenAI, since: int = 0) -> list[str]:
    """What reached a fake since index ``since``: path and model of every body it recorded."""
    return [f"{s.path} {s.body.get('model')}" for s in fake.requests[since:]]
