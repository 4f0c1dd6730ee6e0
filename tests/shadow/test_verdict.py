"""The verdict from ``promote_when`` through a running gateway: ready, not_ready naming the failing criterion,
insufficient_data with the pairs still needed."""

from __future__ import annotations

from pathlib import Path

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import config, drive, route_of, settle
from tests.shadow.fakes import ModelZoo

CRITERIA = {"min_pairs": 30, "scores": {"json_valid": {"min": 0.8}}, "max_candidate_error_rate": 0.1}


def test_verdict_flips_to_not_ready_when_the_candidate_degrades(zoo: ModelZoo, tmp_path: Path) -> None:
    zoo.models["cand"].invalid_every = 20  # 5% invalid JSON: 38 of 40 valid, Wilson lower bound 0.835
    cfg = config(zoo, tmp_path, {"model": "cand", "sample_rate": 1.0, "compare": ["json_valid"]}, CRITERIA)
    with RunningGateway(cfg) as gw:
        drive(gw, range(1, 41))
        before = route_of(settle(gw, 40))["verdict"]
        zoo.models["cand"].invalid_every = 2  # now half of its answers are invalid JSON
        drive(gw, range(41, 81))
        after = route_of(settle(gw, 80))["verdict"]
    assert before["verdict"] == "ready", before
    assert after["verdict"] == "not_ready"
    assert after["failing"] == ["score:json_valid"]


def test_too_few_pairs_is_insufficient_data_with_the_pairs_still_needed(zoo: ModelZoo, tmp_path: Path) -> None:
    cfg = config(zoo, tmp_path, {"model": "cand", "sample_rate": 1.0, "compare": ["json_valid"]},
                 {**CRITERIA, "min_pairs": 100})
    with RunningGateway(cfg) as gw:
        drive(gw, range(1, 11))
        v = route_of(settle(gw, 10))["verdict"]
    assert v["verdict"] == "insufficient_data"
    assert v["pairs_needed"] >= 90
    assert next(c for c in v["criteria"] if c["name"] == "min_pairs")["pairs_needed"] == 90
