"""A candidate model without a price is never shown as free: the shadow report has no cost, saving or cost
ratio for it (so it cannot look like a 100% saving, nor pass a ``max_cost_ratio`` criterion), and says how many
pairs had an unpriced side."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import ask, config, price, route_of, sdk, settle, shadow_route, zoo_models
from tests.shadow.fakes import ModelSpec, ModelZoo

N = 6


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    zoo = ModelZoo(zoo_models(**{"cand-free": ModelSpec(delay_s=0.01)})).start()
    cfg = config(
        zoo,
        tmp_path_factory.mktemp("unpriced"),
        {"model": "cand"},
        extra_routes=[shadow_route("unpriced", {"model": "cand-free"}, promote_when={"max_cost_ratio": 0.5})],
    )
    cfg["models"]["cand-free"] = {"backend": "zoo"}  # not in the price table, no accounting.pricing entry
    try:
        with RunningGateway(cfg) as gw:
            with sdk(gw) as client:
                for i in range(N):
                    ask(client, i, model="f-unpriced")
            yield route_of(settle(gw, N, route="unpriced"), "unpriced")
    finally:
        zoo.stop()


def test_an_unpriced_candidate_has_no_cost_and_no_saving(report: dict[str, object]) -> None:
    cost = report["cost"]
    assert isinstance(cost, dict)
    assert cost["unpriced_pairs"] == {"primary": 0, "candidate": N}
    assert cost["candidate_per_1k_usd"] is None
    assert cost["projected_monthly_saving_usd"] is None and cost["saving_per_1k_usd"] is None
    assert cost["cost_ratio"] is None
    assert cost["paired_difference_per_1k_usd"]["n"] == 0
    assert Decimal(cost["primary_per_1k_usd"]) == price("frontier", 20, 10) * 1000


def test_an_unpriced_candidate_does_not_pass_a_cost_criterion(report: dict[str, object]) -> None:
    verdict = report["verdict"]
    assert isinstance(verdict, dict) and verdict["verdict"] != "ready"
    (cost,) = [c for c in verdict["criteria"] if c["name"] == "cost_ratio"]
    assert cost["status"] != "pass" and cost["value"] is None
