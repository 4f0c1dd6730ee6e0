"""Weighted targets (canaries) split traffic by weight; a sticky key always lands on the same target."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import openai

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.routing.conftest import MSG, chat, sdk, two_backend_config

CANARY = {
    "name": "canary",
    "match": {"model": "svc"},
    "targets": [{"model": "stable", "weight": 90}, {"model": "candidate", "weight": 10}],
}


def canary_config(upstream: FakeOpenAI, upstream2: FakeOpenAI, **rule: Any) -> dict[str, Any]:
    cfg = two_backend_config(upstream, upstream2, routes=[{**CANARY, **rule}])
    cfg["models"].update({"stable": {"backend": "up", "upstream_model": "stable-v1"},
                          "candidate": {"backend": "up", "upstream_model": "candidate-v2"},
                          "svc": {"backend": "up"}})
    return cfg


async def _send(base_url: str, n: int, concurrency: int = 16) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await client.chat.completions.create(model="svc", messages=MSG)  # type: ignore[arg-type]

        await asyncio.gather(*(one() for _ in range(n)))


def test_weights_split_traffic_within_statistical_bounds(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(canary_config(upstream, upstream2))
    n = 2000
    asyncio.run(_send(gw.base_url, n))
    seen = Counter(r.body["model"] for r in upstream.requests)
    assert seen["stable-v1"] + seen["candidate-v2"] == n
    # 10% canary: mean 200, sd = sqrt(n p (1-p)) ~ 13.4; allow 4.5 sd either side.
    sd = math.sqrt(n * 0.1 * 0.9)
    assert abs(seen["candidate-v2"] - 200) <= 4.5 * sd, seen


def test_sticky_header_always_lands_on_the_same_target(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(canary_config(upstream, upstream2, targets=[
        {"model": "stable", "weight": 50}, {"model": "candidate", "weight": 50}]))
    client = sdk(gw)
    landed: dict[str, set[str]] = {}
    for i in range(40):
        for _ in range(4):
            model = chat(client, "svc", extra_headers={"x-pointsman-sticky": f"session-{i}"})["x-pointsman-model"]
            landed.setdefault(f"session-{i}", set()).add(model)
    assert all(len(models) == 1 for models in landed.values())
    assert set.union(*landed.values()) == {"stable-v1", "candidate-v2"}


def test_user_field_is_the_default_sticky_key(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> None:
    gw = gateway_factory(canary_config(upstream, upstream2, targets=[
        {"model": "stable", "weight": 50}, {"model": "candidate", "weight": 50}]))
    client = sdk(gw)
    for i in range(20):
        models = {chat(client, "svc", user=f"user-{i}")["x-pointsman-model"] for _ in range(4)}
        assert len(models) == 1


def test_sticky_tag_source_keys_on_that_tag(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> None:
    gw = gateway_factory(canary_config(upstream, upstream2, sticky="tag:tenant", targets=[
        {"model": "stable", "weight": 50}, {"model": "candidate", "weight": 50}]))
    client = sdk(gw)
    for i in range(20):
        models = {chat(client, "svc", metadata={"tenant": f"t{i}"}, user=f"u{j}")["x-pointsman-model"]
                  for j in range(4)}
        assert len(models) == 1


def test_zero_weight_target_gets_no_traffic(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> None:
    gw = gateway_factory(canary_config(upstream, upstream2, targets=[
        {"model": "stable", "weight": 1}, {"model": "candidate", "weight": 0}]))
    client = sdk(gw)
    assert {chat(client, "svc")["x-pointsman-model"] for _ in range(30)} == {"stable-v1"}


def test_a_seed_makes_the_random_split_repeatable(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> None:
    def run() -> list[str]:
        gw = gateway_factory(canary_config(upstream, upstream2, targets=[
            {"model": "stable", "weight": 50}, {"model": "candidate", "weight": 50}]))
        client = sdk(gw)
        return [chat(client, "svc")["x-pointsman-model"] for _ in range(30)]

    assert run() == run()
