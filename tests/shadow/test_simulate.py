"""The verdict's error rates by simulation (``routing/shadow/simulate.py`` driving the real ``Verdict``), with
fewer runs than the shipped table: every null scenario's false-ready rate, with the verdict checked after every
pair, stays within alpha plus its Monte-Carlo error; a clearly better candidate is found; a judge that says nothing
never leads to ready."""

from __future__ import annotations

import orjson
import pytest

from gateway.cli import main as cli_main
from routing.shadow.simulate import SCENARIOS, Scenario, goal, run_scenario, tolerance

ALPHA = 0.05
NULLS = [s for s in SCENARIOS if s.expect == "false_ready"]
SILENT = [s for s in SCENARIOS if s.expect in ("never_ready", "unreliable")]


@pytest.mark.parametrize("scenario", NULLS, ids=lambda s: s.name)
def test_false_ready_stays_within_alpha_under_continuous_peeking(scenario: Scenario) -> None:
    # Two processes: the same runs (test_runs_are_reproducible_whatever_the_number_of_processes), in a seventh of
    # the default tier's time under coverage (which traces this process only; the code is covered by the others).
    r = run_scenario(scenario, runs=150, horizon=1500, alpha=ALPHA, jobs=2)
    assert not scenario.ready_is_right
    assert r.ready_rate <= ALPHA + tolerance(ALPHA, r.runs), r.as_dict()


@pytest.mark.parametrize("scenario", SILENT, ids=lambda s: s.name)
def test_a_judge_that_says_nothing_never_leads_to_ready(scenario: Scenario) -> None:
    r = run_scenario(scenario, runs=25, horizon=1000, alpha=ALPHA)
    assert r.ready == 0
    assert r.unreliable_rate >= 0.95


def test_a_clearly_better_candidate_is_ready_by_two_thousand_pairs() -> None:
    better = next(s for s in SCENARIOS if s.name == "better")
    r = run_scenario(better, runs=60, horizon=2000, alpha=ALPHA)
    assert goal(r, ALPHA)[1], r.as_dict()


def test_runs_are_reproducible_whatever_the_number_of_processes() -> None:
    sc = next(s for s in SCENARIOS if s.name == "just-inside")
    assert run_scenario(sc, runs=8, horizon=600) == run_scenario(sc, runs=8, horizon=600, jobs=2)


def test_the_cli_prints_the_table_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(
        [
            "shadow",
            "simulate",
            "--runs",
            "10",
            "--horizon",
            "300",
            "--scenario",
            "better-tie",
            "--json",
            "--jobs",
            "1",
        ]
    )
    doc = orjson.loads(capsys.readouterr().out)
    assert rc == 0 and doc["all_goals_met"] is True
    assert [(s["scenario"], s["ready_rate"], s["judge_unreliable_rate"]) for s in doc["scenarios"]] == [
        ("better-tie", 0.0, 1.0)
    ]


def test_the_cli_refuses_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["shadow", "simulate", "--scenario", "nope", "--jobs", "1"]) == 2
    assert "unknown scenarios ['nope']" in capsys.readouterr().err
