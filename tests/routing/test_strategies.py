"""Strategies among healthy targets: weighted, least_latency (EWMA), cheapest (price table)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from routing.config import RouteConfig
from routing.models import ModelTable, ResolvedModel
from routing.policy import Policy
from routing.rules import RouteInput
from serving.config import ModelConfig
from tests.fakes.openai_upstream import FakeOpenAI
from tests.routing.conftest import chat, sdk, two_backend_config

MODELS = {name: ModelConfig(backend=f"b-{name}") for name in ("fast", "slow", "cheap", "pricey", "unpriced")}


class Health:
    """A HealthView whose state the test sets."""

    def __init__(self, down: set[str] = frozenset(), latency: Mapping[str, float] | None = None) -> None:
        self.down = set(down)
        self.latency = dict(latency or {})

    def is_up(self, backend_name: str) -> bool:
        return backend_name not in self.down


def policy(
    rule: dict[str, Any], health: Health, prices: Mapping[str, str] | None = None, explore: float = 0.0
) -> Policy:
    def cost_of(m: ResolvedModel) -> Decimal | None:
        p = (prices or {}).get(m.name)
        return None if p is None else Decimal(p)

    return Policy(
        [RouteConfig.model_validate({"name": "r", **rule})],
        ModelTable(MODELS),
        random.Random(1),
        health,
        cost_of if prices is not None else None,
        explore,
    )


def chosen(p: Policy, n: int = 50) -> Counter[str]:
    return Counter(p.decide(RouteInput("any", {}, "k", None)).attempts[0].name for _ in range(n))


def targets(*names: str) -> list[dict[str, Any]]:
    return [{"model": n} for n in names]


def test_least_latency_picks_the_lowest_ewma() -> None:
    p = policy(
        {"strategy": "least_latency", "targets": targets("slow", "fast")},
        Health(latency={"slow": 0.9, "fast": 0.1}),
    )
    assert chosen(p) == {"fast": 50}


def test_least_latency_tries_an_unmeasured_target_first() -> None:
    p = policy(
        {"strategy": "least_latency", "targets": targets("fast", "slow")}, Health(latency={"fast": 0.1})
    )
    assert chosen(p, 1) == {"slow": 1}


def test_least_latency_explores_a_small_share() -> None:
    p = policy(
        {"strategy": "least_latency", "targets": targets("slow", "fast")},
        Health(latency={"slow": 0.9, "fast": 0.1}),
        explore=0.1,
    )
    got = chosen(p, 1000)
    assert 20 <= got["slow"] <= 90


def test_least_latency_skips_a_target_that_is_down() -> None:
    p = policy(
        {"strategy": "least_latency", "targets": targets("slow", "fast")},
        Health(down={"b-fast"}, latency={"slow": 0.9, "fast": 0.1}),
    )
    assert chosen(p) == {"slow": 50}


def test_cheapest_picks_the_lowest_price() -> None:
    p = policy(
        {"strategy": "cheapest", "targets": targets("pricey", "cheap")},
        Health(),
        {"pricey": "10", "cheap": "0.5"},
    )
    assert chosen(p) == {"cheap": 50}


def test_cheapest_picks_the_cheapest_model_that_is_up() -> None:
    p = policy(
        {"strategy": "cheapest", "targets": targets("pricey", "cheap")},
        Health(down={"b-cheap"}),
        {"pricey": "10", "cheap": "0.5"},
    )
    assert chosen(p) == {"pricey": 50}


def test_cheapest_ranks_unpriced_models_last() -> None:
    p = policy({"strategy": "cheapest", "targets": targets("unpriced", "pricey")}, Health(), {"pricey": "10"})
    assert chosen(p) == {"pricey": 50}


def test_weighted_choice_avoids_a_target_that_is_down() -> None:
    p = policy(
        {"targets": [{"model": "fast", "weight": 50}, {"model": "slow", "weight": 50}]},
        Health(down={"b-fast"}),
    )
    assert chosen(p) == {"slow": 50}


def test_sticky_keys_on_a_healthy_target_stay_put_when_another_goes_down() -> None:
    rule = {
        "targets": [
            {"model": "fast", "weight": 1},
            {"model": "slow", "weight": 1},
            {"model": "cheap", "weight": 1},
        ]
    }
    healthy, degraded = policy(rule, Health()), policy(rule, Health(down={"b-fast"}))
    for i in range(60):
        inp = RouteInput("any", {}, "k", None, sticky_header=f"s{i}")
        before = healthy.decide(inp).attempts[0].name
        if before != "fast":
            assert degraded.decide(inp).attempts[0].name == before


def test_least_latency_end_to_end_prefers_the_faster_backend(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    upstream.delay = 0.3
    route = {
        "name": "fastest",
        "match": {"model": "svc"},
        "strategy": "least_latency",
        "targets": [{"model": "m-primary"}, {"model": "m-secondary"}],
    }
    cfg = two_backend_config(upstream, upstream2, routes=[route])
    cfg["routing"]["latency_explore"] = 0
    gw = gateway_factory(cfg)
    client = sdk(gw)
    backends = Counter(chat(client, "svc")["x-pointsman-backend"] for _ in range(12))
    assert backends["up"] <= 3  # measured once (unmeasured targets go first), then avoided


def test_cheapest_end_to_end_uses_the_accounting_price_table(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    route = {
        "name": "thrifty",
        "match": {"model": "svc"},
        "strategy": "cheapest",
        "targets": [{"model": "m-primary"}, {"model": "m-secondary"}],
    }
    cfg = two_backend_config(upstream, upstream2, routes=[route])
    cfg["models"]["m-secondary"]["upstream_model"] = "budget-model"
    cfg["accounting"] = {
        "pricing": {
            "gpt-4o-mini": {"input_per_mtok": "0.15", "output_per_mtok": "0.6"},
            "budget-model": {"input_per_mtok": "0.01", "output_per_mtok": "0.02"},
        }
    }
    gw = gateway_factory(cfg)
    assert chat(sdk(gw), "svc")["x-pointsman-backend"] == "up2"
