"""Failures on either side, bounds and budget: the client's response never changes, and every sampled request
still becomes exactly one pair record that says what happened."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import admin, ask, config, drive, linear_percentile, price, route_of, sdk, settle
from tests.shadow.fakes import ModelSpec, ModelZoo


@pytest.fixture
def gateway_for(zoo: ModelZoo, tmp_path: Path) -> Iterator[Any]:
    started: list[RunningGateway] = []

    def start(shadow: dict[str, Any], **kw: Any) -> RunningGateway:
        gw = RunningGateway(config(zoo, tmp_path, {"sample_rate": 1.0, **shadow}, **kw)).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def pairs(gw: RunningGateway) -> list[dict[str, Any]]:
    with admin(gw) as a:
        data: list[dict[str, Any]] = a.get("/admin/shadow/pairs", params={"limit": 10_000}).json()["data"]
        return data


def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_the_client_gets_the_primary_answer_unchanged(zoo: ModelZoo, gateway_for: Any) -> None:
    zoo.models["cand"].label = "something else"
    gw = gateway_for({"model": "cand"})
    answers = drive(gw, range(1, 6))
    assert answers == [f'{{"item":{i},"label":"positive"}}' for i in range(1, 6)]
    assert route_of(settle(gw, 5))["comparators"] == {}
    assert {p["candidate"]["ok"] for p in pairs(gw)} == {True}


def test_a_failing_candidate_is_a_pair_counted_against_the_candidate(zoo: ModelZoo, gateway_for: Any) -> None:
    zoo.models["cand"].mode = "fail"
    gw = gateway_for({"model": "cand"})
    drive(gw, range(1, 11))
    r = route_of(settle(gw, 10))
    assert (r["counts"]["candidate_failed"], r["counts"]["paired"]) == (10, 0)
    assert r["errors"]["candidate_error_rate"]["estimate"] == 1.0
    assert r["errors"]["candidate_errors_by_type"] == {"http_5xx": 10}


def test_a_failed_primary_is_recorded_with_its_reason_and_excluded(zoo: ModelZoo, gateway_for: Any) -> None:
    zoo.models["frontier"].mode = "fail"
    gw = gateway_for({"model": "cand", "compare": ["json_valid"]})
    with sdk(gw) as client:
        for i in range(1, 6):
            with pytest.raises(openai.InternalServerError):
                ask(client, i)
    r = route_of(settle(gw, 5))
    assert (r["counts"]["primary_failed"], r["counts"]["quality_pairs"]) == (5, 0)
    assert r["counts"]["excluded_by_reason"] == {"http_5xx": 5}
    assert r["comparators"]["json_valid"]["n"] == 0


def test_a_primary_served_by_a_fallback_is_excluded_as_such(zoo: ModelZoo, gateway_for: Any) -> None:
    zoo.models["frontier"].mode = "fail"
    gw = gateway_for({"model": "cand"}, route={"fallbacks": ["frontier2"]})
    drive(gw, range(1, 6))
    r = route_of(settle(gw, 5))
    assert r["counts"]["excluded_by_reason"] == {"fallback": 5}
    assert all(p["primary"]["fallbacks"] == 1 for p in pairs(gw))


def test_dropped_shadows_are_counted_and_still_recorded_as_pairs(zoo: ModelZoo, gateway_for: Any) -> None:
    zoo.models["cand"].delay_s = 0.5
    gw = gateway_for({"model": "cand", "max_concurrency": 2, "queue_size": 2})
    drive(gw, range(1, 13), workers=12)
    r = route_of(settle(gw, 12))
    c = r["counts"]
    assert c["paired"] + c["dropped"] == 12
    assert c["dropped"] >= 6 and set(c["dropped_by_reason"]) == {"queue_full"}
    assert metric(gw, "pointsman_shadow_dropped_total", reason="queue_full") == c["dropped"]
    assert metric(gw, "pointsman_shadow_pairs_total", outcome="dropped") == c["dropped"]


def test_a_hanging_candidate_leaves_primary_latency_unchanged_and_the_queue_bounded(
    zoo: ModelZoo, gateway_for: Any
) -> None:
    zoo.models["cand"].mode = "hang"
    gw = gateway_for({"model": "cand", "max_concurrency": 2, "queue_size": 2, "timeout_s": 0.75},
                     extra_routes=[{"name": "plain", "match": {"model": "frontier2"}, "targets": [{"model": "frontier2"}]}])
    shadowed: list[float] = []
    plain: list[float] = []
    depth: list[tuple[int, int]] = []
    with sdk(gw) as client, admin(gw) as a:
        ask(client, 0)
        deadline = time.time() + 5
        while time.time() < deadline:  # warm-up: the accountant loads its tokenizers in the background at start
            t0 = time.perf_counter()
            ask(client, 999, model="frontier2")
            if time.perf_counter() - t0 < 0.1:
                break
        for i in range(1, 21):
            for model, out in (("frontier", shadowed), ("frontier2", plain)):
                t0 = time.perf_counter()
                ask(client, i if model == "frontier" else 1000 + i, model=model)
                out.append(time.perf_counter() - t0)
            lanes = a.get("/admin/shadow/status").json()["lanes"]["extract"]
            depth.append((lanes["in_flight"], lanes["queued"]))
    assert max(d[0] for d in depth) <= 2 and max(d[1] for d in depth) <= 2
    assert linear_percentile(shadowed, 50) < linear_percentile(plain, 50) + 0.02
    assert linear_percentile(shadowed, 90) < linear_percentile(plain, 90) + 0.03
    r = route_of(settle(gw, 21, route="extract"), "extract")
    assert r["counts"]["dropped"] >= 4
    assert r["counts"]["candidate_failed"] == 21 - r["counts"]["dropped"]
    assert r["errors"]["candidate_errors_by_type"] == {"timeout": r["counts"]["candidate_failed"]}


def test_an_unreachable_candidate_fails_pairs_not_requests(gateway_for: Any) -> None:
    gw = gateway_for({"model": "cand-dead"})
    answers = drive(gw, range(1, 6))
    assert all(a.startswith('{"item"') for a in answers)
    r = route_of(settle(gw, 5))
    assert r["counts"]["candidate_failed"] == 5
    assert r["errors"]["candidate_errors_by_type"] == {"connect": 5}


def test_the_daily_budget_stops_shadows(zoo: ModelZoo, gateway_for: Any) -> None:
    zoo.models["cand"] = ModelSpec()  # instant answers: each shadow is paid before the next request
    per_call = price("cand", 20, 10)
    gw = gateway_for({"model": "cand", "budget_usd_per_day": str(per_call * 3)})
    with sdk(gw) as client:
        for i in range(1, 11):
            ask(client, i)
            time.sleep(0.02)
    r = route_of(settle(gw, 10))
    assert r["counts"]["paired"] == 3
    assert r["counts"]["dropped_by_reason"] == {"budget": 7}
    assert metric(gw, "pointsman_shadow_dropped_total", reason="budget") == 7


def test_sampling_follows_the_rate_by_request_id(gateway_for: Any) -> None:
    gw = gateway_for({"model": "cand", "sample_rate": 0.25})
    drive(gw, range(1, 201), workers=16)
    with admin(gw) as a:
        deadline = time.time() + 10
        while time.time() < deadline:
            counters = a.get("/admin/shadow/status").json()["counters"]
            if counters["written"] == counters["sampled"]:
                break
            time.sleep(0.05)
        r = route_of(a.get("/admin/shadow/report").json())
    assert r["cost"]["requests_seen"] == 200
    # 200 draws at p = 0.25: 50 expected, sd ~6.1; the hash is fixed, so this is deterministic
    assert 30 <= r["counts"]["sampled"] <= 70
