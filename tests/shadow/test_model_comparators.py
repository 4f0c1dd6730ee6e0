"""Model-backed comparators through a running gateway: ``llm_judge`` (both orders, win/tie/loss,
non-inferiority) and ``embedding_cosine``, both called through the gateway's own routing and accounted as
shadow spend."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.accounting.observe import ledger_rows, wait_for
from tests.conftest import ADMIN_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import ask, config, price, route_of, sdk, settle, shadow_route, zoo_models
from tests.shadow.fakes import ModelSpec, ModelZoo, letters

N = 10
ROUTES = [
    # cand-bad's even items are invalid JSON: the judge (preferring valid JSON) calls those losses and the rest
    # ties (both answers valid)
    shadow_route(
        "judge",
        {"model": "cand-bad", "compare": [{"type": "llm_judge", "model": "judge"}]},
        promote_when={"min_pairs": N, "judge_margin": 0.1, "max_candidate_error_rate": None},
    ),
    shadow_route(
        "biased",
        {"model": "cand-bad", "compare": [{"type": "llm_judge", "model": "judge-biased", "name": "judge"}]},
    ),
    shadow_route(
        "embed", {"model": "cand-neg", "compare": [{"type": "embedding_cosine", "model": "embedder"}]}
    ),
]


class Env:
    def __init__(self, gw: RunningGateway, zoo: ModelZoo, data_dir: Path) -> None:
        self.gw, self.zoo, self.data_dir = gw, zoo, data_dir

    def send(self, route: str, items: range) -> dict[str, Any]:
        with sdk(self.gw) as client, ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: ask(client, i, model=f"f-{route}"), items))
        return route_of(settle(self.gw, len(items), route=route), route)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    zoo = ModelZoo(
        zoo_models(
            **{
                "judge-biased": ModelSpec(judge=True, judge_bias=True),
                "cand-neg": ModelSpec(label="negative"),
            }
        )
    ).start()
    data_dir = tmp_path_factory.mktemp("judge")
    with RunningGateway(config(zoo, data_dir, {"model": "cand"}, extra_routes=ROUTES)) as gw:
        yield Env(gw, zoo, data_dir)
    zoo.stop()


@pytest.fixture(scope="module")
def judged(env: Env) -> dict[str, Any]:
    return env.send("judge", range(1, N + 1))


def test_judge_counts_wins_ties_and_losses(judged: dict[str, Any]) -> None:
    s = judged["comparators"]["llm_judge"]
    assert (s["win"], s["tie"], s["loss"]) == (0, N // 2, N // 2)


def test_judge_sees_each_pair_in_both_orders(env: Env, judged: dict[str, Any]) -> None:
    for item in range(1, N + 1):
        mine = [p for p in env.zoo.judge_prompts if f"item {item} " in p]
        firsts = {re.search(r"\[Answer 1\]\n(.*)\n\n\[Answer 2\]", p, re.DOTALL).group(1) for p in mine}  # type: ignore[union-attr]
        assert len(mine) == 2
        assert len(firsts) == (1 if item % 2 else 2)  # identical answers look the same either way round


def test_judge_non_inferiority_fails_at_the_margin(judged: dict[str, Any]) -> None:
    assert judged["comparators"]["llm_judge"]["score"] == pytest.approx(0.25)
    assert judged["comparators"]["llm_judge"]["non_inferior"] is False
    assert judged["verdict"]["verdict"] == "not_ready"
    assert judged["verdict"]["failing"] == ["judge_non_inferior:llm_judge"]


def test_judge_calls_are_accounted_as_shadow_spend(env: Env, judged: dict[str, Any]) -> None:
    r = httpx.get(
        env.gw.url + "/admin/spend",
        params={"group_by": "model", "model": "judge"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    ).json()
    assert r["total"]["requests"] == 2 * N
    assert Decimal(r["total"]["cost_usd"]) == price("judge", 50, 5) * 2 * N


def test_each_judge_call_has_a_ledger_row_with_an_id_of_its_own(env: Env, judged: dict[str, Any]) -> None:
    judge_calls = "route = 'judge' AND requested_model = 'judge'"
    wait_for(lambda: len(ledger_rows(env.data_dir, judge_calls)) >= 2 * N)
    ids = [r["request_id"] for r in ledger_rows(env.data_dir, judge_calls)]
    origins = {r["request_id"] for r in ledger_rows(env.data_dir, "route = 'judge' AND shadow = 0")}
    assert len(ids) == len(set(ids)) == 2 * N
    for rid in ids:
        origin, _, number = rid.rpartition(":judge:judge:")
        assert origin in origins and number in ("1", "2"), rid


def test_a_position_biased_judge_cancels_out_to_ties(env: Env) -> None:
    s = env.send("biased", range(21, 27))["comparators"]["judge"]
    assert (s["win"], s["tie"], s["loss"]) == (0, 6, 0)


def test_embedding_cosine_through_the_gateways_own_routing(env: Env) -> None:
    s = env.send("embed", range(31, 36))["comparators"]["embedding_cosine"]
    a, b = letters('{"item":1,"label":"positive"}'), letters('{"item":1,"label":"negative"}')
    expected = sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))
    assert (s["n"], s["errors"]) == (5, 0)
    assert s["mean"] == pytest.approx(expected)
