"""Weighted targets (canaries) split traffic by weight; a sticky key always lands on the same target."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.routing.conftest import MSG, chat, sdk, two_backend_config

EVEN = [{"model": "stable", "weight": 50}, {"model": "candidate", "weight": 50}]
ROUTES = [
    {
        "name": "canary",
        "match": {"model": "svc"},
        "targets": [{"model": "stable", "weight": 90}, {"model": "candidate", "weight": 10}],
    },
    {"name": "even", "match": {"model": "svc-even"}, "targets": EVEN},
    {"name": "by-tenant", "match": {"model": "svc-tenant"}, "targets": EVEN, "sticky": "tag:tenant"},
    {
        "name": "off",
        "match": {"model": "svc-off"},
        "targets": [{"model": "stable", "weight": 1}, {"model": "candidate", "weight": 0}],
    },
]


def canary_config(upstream: FakeOpenAI, upstream2: FakeOpenAI) -> dict[str, Any]:
    cfg = two_backend_config(upstream, upstream2, routes=ROUTES)
    cfg["models"].update(
        {
            "stable": {"backend": "up", "upstream_model": "stable-v1"},
            "candidate": {"backend": "up", "upstream_model": "candidate-v2"},
            "svc*": {"backend": "up"},
        }
    )
    return cfg


@pytest.fixture(scope="module")
def gw(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with RunningGateway(canary_config(*shared_upstreams)) as g:
        yield g


async def _send(base_url: str, model: str, n: int, concurrency: int = 16) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await client.chat.completions.with_raw_response.create(model=model, messages=MSG)  # type: ignore[arg-type]

        await asyncio.gather(*(one() for _ in range(n)))


def test_weights_split_traffic_within_statistical_bounds(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    n = 2000
    asyncio.run(_send(gw.base_url, "svc", n))
    seen = Counter(r.body["model"] for r in fresh[0].requests)
    assert seen["stable-v1"] + seen["candidate-v2"] == n
    # 10% canary: mean 200, sd = sqrt(n p (1-p)) ~ 13.4; allow 4.5 sd either side.
    assert abs(seen["candidate-v2"] - n * 0.1) <= 4.5 * math.sqrt(n * 0.1 * 0.9), seen


def test_sticky_header_always_lands_on_the_same_target(gw: RunningGateway, fresh: Any) -> None:
    client = sdk(gw)
    landed: dict[str, set[str]] = {}
    for i in range(40):
        for _ in range(3):
            model = chat(client, "svc-even", extra_headers={"x-pointsman-sticky": f"session-{i}"})[
                "x-pointsman-model"
            ]
            landed.setdefault(f"session-{i}", set()).add(model)
    assert all(len(models) == 1 for models in landed.values())
    assert set.union(*landed.values()) == {"stable-v1", "candidate-v2"}


def test_user_field_is_the_default_sticky_key(gw: RunningGateway, fresh: Any) -> None:
    client = sdk(gw)
    for i in range(20):
        assert len({chat(client, "svc-even", user=f"user-{i}")["x-pointsman-model"] for _ in range(3)}) == 1


def test_sticky_tag_source_keys_on_that_tag(gw: RunningGateway, fresh: Any) -> None:
    client = sdk(gw)
    for i in range(20):
        models = {
            chat(client, "svc-tenant", metadata={"tenant": f"t{i}"}, user=f"u{j}")["x-pointsman-model"]
            for j in range(3)
        }
        assert len(models) == 1


def test_zero_weight_target_gets_no_traffic(gw: RunningGateway, fresh: Any) -> None:
    client = sdk(gw)
    assert {chat(client, "svc-off")["x-pointsman-model"] for _ in range(30)} == {"stable-v1"}


def test_a_seed_makes_the_random_split_repeatable(
    fresh: tuple[FakeOpenAI, FakeOpenAI], gateway_factory: Any
) -> None:
    def run() -> list[str]:
        gw = gateway_factory(canary_config(*fresh))
        client = sdk(gw)
        return [chat(client, "svc-even")["x-pointsman-model"] for _ in range(30)]

    first = run()
    assert first == run()
    assert len(set(first)) == 2
