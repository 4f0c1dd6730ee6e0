"""Promotion through a running gateway: a guarded ramp of the candidate into the route's targets, recorded in
the route history, measured by reverse shadows, and rolled back when the candidate starts failing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as cli_main
from tests.conftest import ADMIN_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import admin, ask, config, sdk, shadow_route, zoo_models
from tests.shadow.fakes import ModelSpec, ModelZoo

STEPS = [20.0, 50.0, 100.0]


def promo_shadow(
    model: str = "cand", guards: dict[str, Any] | None = None, **promotion: Any
) -> dict[str, Any]:
    return {
        "model": model,
        "sample_rate": 1.0,
        "compare": ["json_valid"],
        "promotion": {
            "steps": STEPS,
            "dwell_s": None,
            "dwell_requests": 4,
            "check_interval_s": 0.05,
            "reverse_sample_rate": 1.0,
            "require_ready": False,
            "guards": guards or {"max_error_rate": 0.2, "min_requests": 4},
            **promotion,
        },
    }


def promo_config(zoo: ModelZoo, data_dir: Path, **extra: Any) -> dict[str, Any]:
    return config(
        zoo, data_dir, promo_shadow(), route={"fallbacks": ["frontier2"]}, routing={"seed": 11}, **extra
    )


def promotion(gw: RunningGateway, route: str = "extract") -> dict[str, Any]:
    with admin(gw) as a:
        doc: dict[str, Any] = a.get(f"/admin/routes/{route}/promotion").json()
        return doc


def drive_until(
    gw: RunningGateway, done: Any, start: int = 1, timeout: float = 30.0, route: str = "extract"
) -> int:
    """Sequential requests until ``done(promotion state)``; returns the next item number."""
    i = start
    deadline = time.time() + timeout
    model = "frontier" if route == "extract" else f"f-{route}"
    with sdk(gw) as client:
        while time.time() < deadline:
            ask(client, i, model=model)
            i += 1
            if i % 4 == 0 and done(promotion(gw, route)):
                return i
    raise AssertionError(f"promotion did not get there: {promotion(gw, route)}")


class Ramp:
    def __init__(self, gw: RunningGateway, started: dict[str, Any], final: dict[str, Any]) -> None:
        self.gw, self.started, self.final = gw, started, final


@pytest.fixture(scope="module")
def ramp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ramp]:
    zoo = ModelZoo(zoo_models()).start()
    with RunningGateway(promo_config(zoo, tmp_path_factory.mktemp("ramp"))) as gw:
        with admin(gw) as a:
            started = a.post("/admin/routes/extract/promote", json={}).json()
        drive_until(gw, lambda s: s["promotion"]["status"] == "completed")
        with sdk(gw) as client:
            for i in range(500, 504):  # after completion the candidate serves everything, reverse-shadowed
                ask(client, i)
        time.sleep(0.3)
        yield Ramp(gw, started, promotion(gw))
    zoo.stop()


def test_promote_starts_at_the_first_step(ramp: Ramp) -> None:
    assert ramp.started["status"] == "ramping" and ramp.started["step"] == 0
    assert ramp.started["original_targets"] == [{"model": "frontier", "weight": 1.0}]


def test_a_promotion_ramps_through_every_step_then_completes(ramp: Ramp) -> None:
    events = ramp.final["events"]
    assert [e["event"] for e in events] == ["start", "step", "step", "step", "complete"]
    assert [e["percent"] for e in events if e["event"] == "step"] == STEPS
    assert ramp.final["promotion"]["status"] == "completed"


def test_each_step_is_a_policy_version_in_the_route_history(ramp: Ramp) -> None:
    with admin(ramp.gw) as a:
        history = a.get("/admin/routes/history", params={"limit": 50}).json()
    summaries = [v["summary"] for v in history["history"]]
    for n, pct in enumerate(STEPS, 1):
        assert f"shadow promotion of route extract: step {n}/3, cand at {pct:g}%" in summaries
    versions = [e["policy_version"] for e in ramp.final["events"] if e["event"] == "step"]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_a_completed_promotion_leaves_the_candidate_serving_the_route(ramp: Ramp) -> None:
    with admin(ramp.gw) as a:
        route = a.get("/admin/routes/extract").json()
    route = route.get("route", route)
    assert [(t["model"], t["weight"]) for t in route["targets"]] == [("cand", 100.0)]


def test_requests_the_candidate_serves_are_shadowed_back_to_the_baseline(ramp: Ramp) -> None:
    with admin(ramp.gw) as a:
        pairs = a.get("/admin/shadow/pairs", params={"limit": 10_000}).json()["data"]
    reverse = [p for p in pairs if p["direction"] == "reverse"]
    assert {p["id"] for p in reverse} >= {f"req-{i}" for i in range(500, 504)}
    assert all(p["candidate"]["model"] == "cand" and p["primary"]["model"] == "frontier" for p in reverse)
    assert {p["outcome"] for p in reverse} == {"paired"}


def test_cli_shows_the_promotion_and_its_events(ramp: Ramp, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(
        ["shadow", "promote", "extract", "--status", "--url", ramp.gw.url, "--admin-key", ADMIN_KEY]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "completed" in out and "step 3: 100.0%" in out


GUARDED = [
    shadow_route("errors", promo_shadow("cand-fail-later"), fallbacks=["frontier2"]),
    shadow_route(
        "scores",
        promo_shadow("cand-flip", {"min_scores": {"json_valid": 0.9}, "min_requests": 4, "min_pairs": 4}),
    ),
    shadow_route("refuse", promo_shadow(require_ready=True), promote_when={"min_pairs": 50}),
]


class Guarded:
    def __init__(self, gw: RunningGateway, zoo: ModelZoo) -> None:
        self.gw, self.zoo = gw, zoo

    def route(self, name: str) -> dict[str, Any]:
        with admin(self.gw) as a:
            doc: dict[str, Any] = a.get(f"/admin/routes/{name}").json()
        r: dict[str, Any] = doc.get("route", doc)
        return r

    def history(self) -> list[str]:
        with admin(self.gw) as a:
            return [
                v["summary"] for v in a.get("/admin/routes/history", params={"limit": 100}).json()["history"]
            ]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    zoo = ModelZoo(
        zoo_models(**{"cand-fail-later": ModelSpec(delay_s=0.03), "cand-flip": ModelSpec(delay_s=0.03)})
    ).start()
    with RunningGateway(promo_config(zoo, tmp_path_factory.mktemp("guarded"), extra_routes=GUARDED)) as gw:
        yield Guarded(gw, zoo)
    zoo.stop()


def test_a_promotion_rolls_back_when_the_candidate_starts_failing_mid_ramp(guarded: Guarded) -> None:
    gw = guarded.gw
    with admin(gw) as a:
        assert a.post("/admin/routes/errors/promote", json={}).status_code == 200
    nxt = drive_until(gw, lambda s: s["promotion"]["step"] >= 1, start=1000, route="errors")  # at 50%
    guarded.zoo.models["cand-fail-later"].mode = "fail"  # clients still get answers: fallback to frontier2
    drive_until(gw, lambda s: s["promotion"]["status"] == "rolled_back", start=nxt, route="errors")
    rollback = promotion(gw, "errors")["events"][-1]
    assert rollback["event"] == "rollback" and rollback["step"] == 1
    assert "candidate error rate" in rollback["reason"]
    assert [t["model"] for t in guarded.route("errors")["targets"]] == ["frontier"]
    assert any(
        h.startswith("shadow promotion of route errors rolled back: candidate error rate")
        for h in guarded.history()
    )


def test_a_promotion_rolls_back_when_reverse_shadow_scores_drop(guarded: Guarded) -> None:
    gw = guarded.gw
    with admin(gw) as a:
        assert a.post("/admin/routes/scores/promote", json={}).status_code == 200
    nxt = drive_until(gw, lambda s: s["promotion"]["step"] >= 1, start=2000, route="scores")
    guarded.zoo.models["cand-flip"].invalid_every = 1  # every answer now invalid JSON, but no errors
    drive_until(gw, lambda s: s["promotion"]["status"] == "rolled_back", start=nxt, route="scores")
    rollback = promotion(gw, "scores")["events"][-1]
    assert rollback["event"] == "rollback" and rollback["reason"].startswith("json_valid ")
    assert [t["model"] for t in guarded.route("scores")["targets"]] == ["frontier"]


def test_promote_is_refused_until_the_verdict_is_ready(guarded: Guarded) -> None:
    with admin(guarded.gw) as a:
        refused = a.post("/admin/routes/refuse/promote", json={})
        forced = a.post("/admin/routes/refuse/promote", json={"force": True})
    assert refused.status_code == 409
    assert refused.json()["error"]["verdict"]["verdict"] == "insufficient_data"
    assert forced.status_code == 200 and forced.json()["forced"] is True
