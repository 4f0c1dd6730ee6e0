"""Paired comparisons through a running gateway: the candidate against the primary on the same requests, with a
non-inferiority margin in ``promote_when``. The primary ``sloppy`` breaks its JSON on every third item, the
candidate ``cand`` on every tenth."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import ask, config, price, route_of, sdk, settle, shadow_route, zoo_models
from tests.shadow.fakes import ModelSpec, ModelZoo

N = 90
ROUTES = [
    shadow_route(
        "paired",
        {"model": "cand", "compare": ["json_valid"], "max_concurrency": 32, "queue_size": 128},
        targets=("sloppy",),
        promote_when={
            "min_pairs": 30,
            "scores": {"json_valid": {"margin": 0.05}},
            "max_candidate_error_rate": None,
        },
    )
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], ModelZoo]]:
    zoo = ModelZoo(zoo_models(sloppy=ModelSpec(delay_s=0.01, invalid_every=3))).start()
    with RunningGateway(
        config(zoo, tmp_path_factory.mktemp("paired"), {"model": "cand"}, extra_routes=ROUTES)
    ) as gw:
        with sdk(gw) as client, ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: ask(client, i, model="f-paired"), range(1, N + 1)))
        yield route_of(settle(gw, N, route="paired"), "paired"), zoo
    zoo.stop()


def test_the_paired_table_counts_what_each_side_sent(env: tuple[dict[str, Any], ModelZoo]) -> None:
    route, zoo = env
    prim = {s.item: s.valid_json for s in zoo.served("sloppy")}
    cand = {s.item: s.valid_json for s in zoo.served("cand")}
    table = {"both": 0, "primary_only": 0, "candidate_only": 0, "neither": 0}
    for i in range(1, N + 1):
        table[
            {
                (True, True): "both",
                (True, False): "primary_only",
                (False, True): "candidate_only",
                (False, False): "neither",
            }[(prim[i], cand[i])]
        ] += 1
    paired = route["comparators"]["json_valid"]["paired"]
    assert (
        {k: paired[k] for k in table}
        == table
        == {"both": 54, "primary_only": 6, "candidate_only": 27, "neither": 3}
    )
    assert paired["difference"] == pytest.approx((27 - 6) / N)
    assert paired["ci95"][0] < paired["difference"] < paired["ci95"][1]


def test_a_candidate_better_than_the_primary_passes_its_margin(env: tuple[dict[str, Any], ModelZoo]) -> None:
    v = env[0]["verdict"]
    crit = next(c for c in v["criteria"] if c["name"] == "paired:json_valid")
    assert crit["status"] == "pass" and crit["anytime"]["lower"] > -0.05
    assert v["verdict"] == "ready"


def test_latency_and_cost_are_compared_pair_by_pair(env: tuple[dict[str, Any], ModelZoo]) -> None:
    route = env[0]
    lat = route["latency"]["total"]["paired_difference_s"]
    assert lat["n"] == N and lat["ci95"][0] <= lat["mean"] <= lat["ci95"][1]
    cost = route["cost"]["paired_difference_per_1k_usd"]
    per_1k = (price("cand", 20, 10) - price("sloppy", 20, 10)) * 1000
    assert Decimal(cost["mean"]) == per_1k
    assert [Decimal(x) for x in cost["ci95"]] == [per_1k, per_1k]  # every pair costs the same: no spread
