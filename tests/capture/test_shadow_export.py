"""Export from shadow pairs judged by ``llm_judge``: the winner's answer, and winner-over-loser preference pairs.

The primary answers items divisible by 3 with truncated (invalid) JSON; the candidate always answers valid
JSON; the fake judge prefers valid JSON (tie when both are). So items 3 and 6 are candidate wins, the rest ties.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.capture.conftest import Admin
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import config, drive, zoo_models
from tests.shadow.fakes import ModelSpec, ModelZoo

WINS = {3, 6}


@pytest.fixture
def judged_gateway(tmp_path: Path) -> Iterator[tuple[RunningGateway, Admin]]:
    zoo = ModelZoo(zoo_models(frontier=ModelSpec(invalid_every=3), cand=ModelSpec())).start()
    shadow = {
        "model": "cand",
        "sample_rate": 1.0,
        "capture": True,
        "compare": [{"type": "llm_judge", "model": "judge"}],
    }
    cfg = config(zoo, tmp_path, shadow, route={"capture": {"sample_rate": 1.0}})
    with RunningGateway(cfg) as gw:
        admin = Admin(gw)
        admin.approve("search")
        drive(gw, range(1, 7))
        wait_for_judged(admin, len(WINS))
        yield gw, admin
        admin.close()
    zoo.stop()


def wait_for_judged(admin: Admin, wins: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = admin.export(from_shadow_wins="true")
        if doc["manifest"]["counts"]["examples"]["total"] >= wins:
            return
        time.sleep(0.2)
    raise AssertionError("the judge did not decide the pairs in time")


def answers(doc: dict[str, Any], name: str) -> list[Any]:
    return doc["files"][name]


def test_shadow_wins_export_the_winners_answers(judged_gateway: tuple[RunningGateway, Admin]) -> None:
    doc = judged_gateway[1].export(from_shadow_wins="true", holdout=0)
    got = sorted(e["messages"][-1]["content"] for e in answers(doc, "train.jsonl"))
    assert got == [f'{{"item":{i},"label":"positive"}}' for i in sorted(WINS)]
    assert doc["manifest"]["counts"]["from_shadow_wins"] == len(WINS)


def test_shadow_wins_give_winner_over_loser_preference_pairs(
    judged_gateway: tuple[RunningGateway, Admin],
) -> None:
    doc = judged_gateway[1].export(from_shadow_wins="true", holdout=0)
    prefs = answers(doc, "preferences_train.jsonl")
    assert len(prefs) == len(WINS)
    for p in prefs:
        assert p["preferred_output"][0]["content"].endswith("}")
        assert not p["non_preferred_output"][0]["content"].endswith("}")  # the primary's truncated JSON


def test_primary_wins_only_finds_none_here(judged_gateway: tuple[RunningGateway, Admin]) -> None:
    doc = judged_gateway[1].export(from_shadow_wins="true", shadow_winner="primary")
    assert doc["manifest"]["counts"]["examples"]["total"] == 0


def test_captured_traces_gain_preference_pairs_from_judged_pairs(
    judged_gateway: tuple[RunningGateway, Admin],
) -> None:
    doc = judged_gateway[1].export(holdout=0)
    assert len(answers(doc, "train.jsonl")) == 6
    assert len(answers(doc, "preferences_train.jsonl")) == len(WINS)
