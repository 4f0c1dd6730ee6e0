"""The verdict from ``promote_when`` through a running gateway: ready, not_ready naming the failing criterion,
insufficient_data with the pairs still needed. Each case has its own route (requests for ``f-<route>``)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import ask, config, route_of, sdk, settle, shadow_route, zoo_models
from tests.shadow.fakes import ModelSpec, ModelZoo

CRITERIA = {
    "min_pairs": 30,
    "scores": {"json_valid": {"min": 0.8}},
    "max_candidate_error_rate": 0.1,
    "decide_on": "ci",
}
ROUTES = [
    shadow_route("flip", {"model": "cand-flip", "compare": ["json_valid"]}, promote_when=CRITERIA),
    shadow_route(
        "few", {"model": "cand", "compare": ["json_valid"]}, promote_when={**CRITERIA, "min_pairs": 100}
    ),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, ModelZoo]]:
    # cand-flip starts with 5% invalid JSON: 38 of 40 valid, Wilson lower bound 0.835 > 0.8
    zoo = ModelZoo(zoo_models(**{"cand-flip": ModelSpec(delay_s=0.03, invalid_every=20)})).start()
    with RunningGateway(
        config(zoo, tmp_path_factory.mktemp("verdict"), {"model": "cand"}, extra_routes=ROUTES)
    ) as gw:
        yield gw, zoo
    zoo.stop()


def send(gw: RunningGateway, route: str, items: range) -> None:
    with sdk(gw) as client, ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: ask(client, i, model=f"f-{route}"), items))


def test_verdict_flips_to_not_ready_when_the_candidate_degrades(env: tuple[RunningGateway, ModelZoo]) -> None:
    gw, zoo = env
    send(gw, "flip", range(1, 41))
    before = route_of(settle(gw, 40, route="flip"), "flip")["verdict"]
    zoo.models["cand-flip"].invalid_every = 2  # now half of its answers are invalid JSON
    send(gw, "flip", range(41, 81))
    after = route_of(settle(gw, 80, route="flip"), "flip")["verdict"]
    assert before["verdict"] == "ready", before
    assert after["verdict"] == "not_ready"
    assert after["failing"] == ["score:json_valid"]


def test_too_few_pairs_is_insufficient_data_with_the_pairs_still_needed(
    env: tuple[RunningGateway, ModelZoo],
) -> None:
    send(env[0], "few", range(101, 111))
    v = route_of(settle(env[0], 10, route="few"), "few")["verdict"]
    assert v["verdict"] == "insufficient_data"
    assert v["pairs_needed"] >= 90
    assert next(c for c in v["criteria"] if c["name"] == "min_pairs")["pairs_needed"] == 90
