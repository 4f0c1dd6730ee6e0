"""The verdict engine on pair records built in the test: anytime-valid decisions, judge gating, paired margins
against the primary, and records stored by earlier versions."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from routing.shadow.config import PromoteWhen, ShadowConfig, check_route_shadow
from routing.shadow.judging import detail
from routing.shadow.record import CANDIDATE_FAILED, PairRecord, Side
from routing.shadow.report import summarize
from routing.shadow.verdict import Verdict, verdict

JUDGE_SHADOW = ShadowConfig.model_validate({"model": "c", "compare": [{"type": "llm_judge", "model": "j"}]})
JSON_SHADOW = ShadowConfig.model_validate({"model": "c", "compare": ["json_valid"]})


def pair(i: int, **kw: Any) -> PairRecord:
    p = PairRecord(
        id=f"r{i}",
        ts=1000.0 + i,
        route="r",
        task=None,
        team=None,
        key="k",
        endpoint="chat/completions",
        stream=False,
        primary=Side(ok=True, latency_s=0.1),
        candidate=Side(ok=True, latency_s=0.05),
    )
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def judged(i: int, primary_first: str, candidate_first: str) -> PairRecord:
    score = {("2", "1"): 1.0, ("1", "2"): 0.0}.get((primary_first, candidate_first), 0.5)
    return pair(i, scores={"llm_judge": score}, details={"llm_judge": detail(primary_first, candidate_first)})


def pw(**kw: Any) -> PromoteWhen:
    return PromoteWhen.model_validate({"min_pairs": 20, "max_candidate_error_rate": None, **kw})


def test_a_position_biased_judge_never_yields_ready_however_many_pairs() -> None:
    pairs = [judged(i, "1", "1") for i in range(5000)]
    v = verdict(pairs, {"llm_judge": "judge"}, pw(), None)
    assert v["verdict"] == "judge_unreliable"
    assert v["judges"]["llm_judge"]["reliable"] is False


def test_before_min_pairs_the_verdict_is_insufficient_data_even_with_an_unreliable_judge() -> None:
    v = verdict([judged(i, "1", "1") for i in range(10)], {"llm_judge": "judge"}, pw(), None)
    assert v["verdict"] == "insufficient_data"
    assert v["pairs_needed"] == 10


def test_an_honest_judge_preferring_the_candidate_gives_ready() -> None:
    rng = random.Random(1)
    pairs = [
        judged(i, *rng.choice([("2", "1"), ("tie", "tie"), ("tie", "tie"), ("1", "2")])) for i in range(400)
    ]
    v = verdict(pairs, {"llm_judge": "judge"}, pw(), None)
    assert v["verdict"] == "ready", v
    crit = v["criteria"][1]
    assert crit["name"] == "judge_non_inferior:llm_judge" and crit["anytime"]["lower"] > 0.45


def test_inconsistent_pairs_are_left_out_of_the_judge_score() -> None:
    pairs = [judged(i, "1", "2") for i in range(30)] + [judged(30 + i, "1", "1") for i in range(30)]
    crit = verdict(pairs, {"llm_judge": "judge"}, pw(judge_min_consistency=0.0), None)["criteria"][1]
    assert (crit["n"], crit["value"], crit["status"]) == (30, 0.0, "fail")


def test_zero_variance_is_not_evidence_for_a_fixed_horizon_interval() -> None:
    # every pair scored alike: a t interval collapses to a point, which the ci verdict must not take as proof
    pairs = [pair(i, scores={"token_f1": 0.9}) for i in range(300)]
    crit = verdict(pairs, {"token_f1": "score"}, pw(decide_on="ci", scores={"token_f1": {"min": 0.8}}), None)
    assert crit["criteria"][1]["status"] == "undecided" and crit["criteria"][1]["snapshot_ci95"] is None


def test_a_constant_bounded_sample_counts_only_as_its_distance_from_the_bound_allows() -> None:
    # the betting test treats 0.9 every time like any bounded sample: evidence accrues with n, not at once
    few = verdict(
        [pair(i, scores={"token_f1": 0.9}) for i in range(20)],
        {"token_f1": "score"},
        pw(scores={"token_f1": {"min": 0.85}}),
        None,
    )
    assert few["verdict"] == "insufficient_data"


def test_a_judge_not_used_by_any_criterion_does_not_gate_the_verdict() -> None:
    pairs = [
        pair(i, scores={"json_valid": 1.0, "llm_judge": 0.5}, details={"llm_judge": detail("1", "1")})
        for i in range(200)
    ]
    v = verdict(
        pairs,
        {"json_valid": "pass", "llm_judge": "judge"},
        pw(judge_margin=None, scores={"json_valid": {"min": 0.9}}),
        None,
    )
    assert v["verdict"] == "ready" and v["judges"] == {}


def test_every_criterion_must_pass_for_ready() -> None:
    # json_valid clearly above its floor, the candidate error rate clearly above its cap
    pairs = [pair(i, scores={"json_valid": 1.0}) for i in range(300)]
    pairs += [
        pair(300 + i, outcome=CANDIDATE_FAILED, candidate=Side(ok=False, error="timeout")) for i in range(60)
    ]
    v = verdict(
        sorted(pairs, key=lambda p: p.id),
        {"json_valid": "pass"},
        pw(scores={"json_valid": {"min": 0.9}}, max_candidate_error_rate=0.05),
        None,
    )
    assert v["verdict"] == "not_ready" and v["failing"] == ["candidate_error_rate"]


def test_a_paired_margin_compares_the_candidate_with_the_primary_on_the_same_requests() -> None:
    # the primary passes 95%, the candidate 85% on the same requests: a 10-point drop against a 5-point margin
    pairs = [
        pair(
            i,
            scores={"json_valid": 0.0 if i % 10 < 1 or i % 20 == 5 else 1.0},
            baseline={"json_valid": 0.0 if i % 20 == 1 else 1.0},
        )
        for i in range(400)
    ]
    v = verdict(pairs, {"json_valid": "pass"}, pw(scores={"json_valid": {"margin": 0.05}}), None)
    crit = next(c for c in v["criteria"] if c["name"] == "paired:json_valid")
    assert crit["value"] == pytest.approx(0.85 - 0.95)
    assert crit["status"] == "fail" and v["verdict"] == "not_ready"


def test_a_paired_margin_passes_for_a_candidate_as_good_as_the_primary() -> None:
    rng = random.Random(2)
    pairs = []
    for i in range(600):
        both = rng.random() < 0.9
        pairs.append(
            pair(
                i,
                scores={"json_valid": 1.0 if both or rng.random() < 0.5 else 0.0},
                baseline={"json_valid": 1.0 if both or rng.random() < 0.5 else 0.0},
            )
        )
    v = verdict(pairs, {"json_valid": "pass"}, pw(scores={"json_valid": {"margin": 0.05}}), None)
    crit = next(c for c in v["criteria"] if c["name"] == "paired:json_valid")
    assert crit["status"] == "pass", crit
    assert crit["anytime"]["lower"] > -0.05
    assert crit["snapshot_ci95"][0] < crit["value"] < crit["snapshot_ci95"][1]


def test_a_margin_needs_a_comparator_that_scores_the_primary() -> None:
    shadow = ShadowConfig.model_validate({"model": "c", "compare": ["exact", "json_valid"]})
    check_route_shadow(shadow, pw(scores={"json_valid": {"margin": 0.02}}))
    with pytest.raises(ValueError, match="a margin needs a comparator that scores the primary too"):
        check_route_shadow(shadow, pw(scores={"exact": {"margin": 0.02}}))
    with pytest.raises(ValidationError, match="give min, max, margin or a combination"):
        pw(scores={"exact": {}})


def test_latency_ratio_passes_only_once_the_anytime_bound_is_below_the_limit() -> None:
    rng = random.Random(3)

    def lat(i: int) -> PairRecord:
        return pair(
            i,
            primary=Side(ok=True, latency_s=rng.uniform(0.5, 1.0)),
            candidate=Side(ok=True, latency_s=rng.uniform(0.25, 0.5)),
        )

    few = verdict([lat(i) for i in range(40)], {}, pw(max_latency_p95_ratio=1.0), None)
    many = verdict([lat(i) for i in range(1500)], {}, pw(max_latency_p95_ratio=1.0), None)
    assert few["verdict"] == "insufficient_data" and few["pairs_needed"] > 0
    assert many["verdict"] == "ready", many["criteria"]


def test_the_cost_ratio_is_decided_on_its_estimate_and_says_so() -> None:
    v = verdict([pair(i) for i in range(30)], {}, pw(max_cost_ratio=0.5), 0.1)
    crit = v["criteria"][-1]
    assert (crit["name"], crit["status"], crit["decided_on"]) == ("cost_ratio", "pass", "estimate")


def test_the_state_agrees_with_the_full_report_at_every_pair() -> None:
    rng = random.Random(4)
    engine = Verdict(
        pw(scores={"json_valid": {"min": 0.8, "margin": 0.1}}), {"json_valid": "pass", "llm_judge": "judge"}
    )
    for i in range(300):
        a, b = rng.choice([("2", "1"), ("tie", "tie"), ("1", "2"), ("1", "1")])
        p = judged(i, a, b)
        p.scores["json_valid"] = 1.0 if rng.random() < 0.93 else 0.0
        p.baseline["json_valid"] = 1.0
        engine.add(p)
        assert engine.state() == engine.report()["verdict"]


def test_records_stored_by_earlier_versions_still_load_and_report() -> None:
    old = {
        "id": "r1",
        "ts": 1000.0,
        "route": "r",
        "task": None,
        "team": None,
        "key": "k",
        "endpoint": "chat/completions",
        "stream": False,
        "outcome": "paired",
        "primary": {"model": "f", "ok": True, "latency_s": 0.1},
        "candidate": {"model": "c", "ok": True},
        "scores": {"llm_judge": 0.5},
    }
    pairs = [PairRecord.from_dict({**old, "id": f"r{i}", "ts": 1000.0 + i}) for i in range(30)]
    out = summarize(pairs, [], JUDGE_SHADOW, pw(), now=2000.0)
    assert out["comparators"]["llm_judge"]["judge"]["unrecorded"] == 30
    assert out["comparators"]["llm_judge"]["tie"] == 30
    assert out["verdict"]["verdict"] == "judge_unreliable"
    assert "reliability unknown" in out["verdict"]["reason"]


def test_a_verdict_needing_more_pairs_than_the_report_reads_is_refused() -> None:
    shadow = ShadowConfig.model_validate({"model": "c", "compare": ["exact"], "report_max_pairs": 500})
    check_route_shadow(shadow, pw(min_pairs=500))
    with pytest.raises(ValueError, match=r"min_pairs \(501\) is more than shadow.report_max_pairs \(500\)"):
        check_route_shadow(shadow, pw(min_pairs=501))
