"""Model-backed comparators through a running gateway: ``llm_judge`` (both orders, win/tie/loss,
non-inferiority) and ``embedding_cosine``, both called through the gateway's own routing and accounted as
shadow spend."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import config, drive, price, route_of, settle, zoo_models
from tests.shadow.fakes import ModelSpec, ModelZoo, letters

N = 10


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], ModelZoo, RunningGateway]]:
    # the candidate's even items are invalid JSON: the judge (preferring valid JSON) calls those losses and
    # the rest ties (both answers valid)
    zoo = ModelZoo(zoo_models(cand=ModelSpec(invalid_every=2))).start()
    cfg = config(zoo, tmp_path_factory.mktemp("judge"),
                 {"model": "cand", "sample_rate": 1.0, "compare": [{"type": "llm_judge", "model": "judge"}]},
                 {"min_pairs": N, "judge_margin": 0.1, "max_candidate_error_rate": None})
    with RunningGateway(cfg) as gw:
        drive(gw, range(1, N + 1))
        yield route_of(settle(gw, N)), zoo, gw
    zoo.stop()


def test_judge_counts_wins_ties_and_losses(judged: tuple[dict[str, Any], ModelZoo, RunningGateway]) -> None:
    s = judged[0]["comparators"]["llm_judge"]
    assert (s["win"], s["tie"], s["loss"]) == (0, N // 2, N // 2)


def test_judge_sees_each_pair_in_both_orders(judged: tuple[dict[str, Any], ModelZoo, RunningGateway]) -> None:
    prompts = judged[1].judge_prompts
    assert len(prompts) == 2 * N
    for item in range(1, N + 1):
        mine = [p for p in prompts if f"item {item} " in p]
        firsts = {re.search(r"\[Answer 1\]\n(.*)\n\n\[Answer 2\]", p, re.DOTALL).group(1) for p in mine}  # type: ignore[union-attr]
        assert len(mine) == 2
        assert len(firsts) == (1 if item % 2 else 2)  # identical answers look the same either way round


def test_judge_non_inferiority_fails_at_the_margin(judged: tuple[dict[str, Any], ModelZoo, RunningGateway]) -> None:
    r = judged[0]
    assert r["comparators"]["llm_judge"]["score"] == pytest.approx(0.25)
    assert r["comparators"]["llm_judge"]["non_inferior"] is False
    assert r["verdict"]["verdict"] == "not_ready"
    assert r["verdict"]["failing"] == ["judge_non_inferior:llm_judge"]


def test_judge_calls_are_accounted_as_shadow_spend(judged: tuple[dict[str, Any], ModelZoo, RunningGateway]) -> None:
    gw = judged[2]
    r = httpx.get(gw.url + "/admin/spend", params={"group_by": "model", "model": "judge"},
                  headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30).json()
    assert r["total"]["requests"] == 2 * N
    assert Decimal(r["total"]["cost_usd"]) == price("judge", 50, 5) * 2 * N


def test_a_position_biased_judge_cancels_out_to_ties(tmp_path: Path) -> None:
    zoo = ModelZoo(zoo_models(cand=ModelSpec(invalid_every=2), judge=ModelSpec(judge=True, judge_bias=True))).start()
    try:
        cfg = config(zoo, tmp_path, {"model": "cand", "sample_rate": 1.0,
                                     "compare": [{"type": "llm_judge", "model": "judge", "name": "judge"}]})
        with RunningGateway(cfg) as gw:
            drive(gw, range(1, 7))
            s = route_of(settle(gw, 6))["comparators"]["judge"]
    finally:
        zoo.stop()
    assert (s["win"], s["tie"], s["loss"]) == (0, 6, 0)


def test_embedding_cosine_through_the_gateways_own_routing(tmp_path: Path) -> None:
    zoo = ModelZoo(zoo_models(cand=ModelSpec(label="negative"))).start()
    try:
        cfg = config(zoo, tmp_path, {"model": "cand", "sample_rate": 1.0,
                                     "compare": [{"type": "embedding_cosine", "model": "embedder"}]})
        with RunningGateway(cfg) as gw:
            drive(gw, range(1, 6))
            s = route_of(settle(gw, 5))["comparators"]["embedding_cosine"]
    finally:
        zoo.stop()
    a, b = letters('{"item":1,"label":"positive"}'), letters('{"item":1,"label":"negative"}')
    expected = sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))
    assert (s["n"], s["errors"]) == (5, 0)
    assert s["mean"] == pytest.approx(expected)
