"""Failures on either side, bounds and budget: the client's response never changes, and every sampled request
still becomes exactly one pair record that says what happened.

One gateway serves every case, each on its own route (requests for ``f-<route>``) with its own candidate model,
so the cases cannot disturb each other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import (
    admin,
    ask,
    config,
    linear_percentile,
    price,
    route_of,
    sdk,
    settle,
    shadow_route,
    zoo_models,
)
from tests.shadow.fakes import ModelSpec, ModelZoo

BUDGET_CALLS = 3
ROUTES = [
    shadow_route("unchanged", {"model": "cand-other"}),
    shadow_route("candfail", {"model": "cand-fail"}),
    shadow_route("primfail", {"model": "cand", "compare": ["json_valid"]}, targets=("frontier-fail",)),
    shadow_route("fallback", {"model": "cand"}, targets=("frontier-fail",), fallbacks=["frontier2"]),
    shadow_route("drops", {"model": "cand-slow", "max_concurrency": 2, "queue_size": 2}),
    shadow_route("hang", {"model": "cand-hang", "max_concurrency": 2, "queue_size": 2, "timeout_s": 0.75}),
    shadow_route("dead", {"model": "cand-dead"}),
    shadow_route(
        "budget", {"model": "cand-fast", "budget_usd_per_day": str(price("cand-fast", 20, 10) * BUDGET_CALLS)}
    ),
    shadow_route("sample", {"model": "cand", "sample_rate": 0.25}),
    shadow_route("plain", None, targets=("frontier2",)),
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    zoo = ModelZoo(
        zoo_models(
            **{
                "cand-other": ModelSpec(delay_s=0.03, label="something else"),
                "cand-fail": ModelSpec(mode="fail"),
                "frontier-fail": ModelSpec(mode="fail"),
                "cand-slow": ModelSpec(delay_s=0.5),
                "cand-hang": ModelSpec(mode="hang"),
                "cand-fast": ModelSpec(),
            }
        )
    ).start()
    cfg = config(zoo, tmp_path_factory.mktemp("failures"), {"model": "cand"}, extra_routes=ROUTES)
    with RunningGateway(cfg) as g:
        with sdk(g) as client:
            deadline = time.time() + 5
            while (
                time.time() < deadline
            ):  # warm-up: the accountant loads its tokenizers in the background at start
                t0 = time.perf_counter()
                ask(client, 0, model="f-plain")
                if time.perf_counter() - t0 < 0.1:
                    break
        yield g
    zoo.stop()


def send(gw: RunningGateway, route: str, items: range | list[int], workers: int = 8) -> list[str]:
    from concurrent.futures import ThreadPoolExecutor

    with sdk(gw) as client, ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda i: ask(client, i, model=f"f-{route}"), items))


def report(gw: RunningGateway, route: str, n: int) -> dict[str, Any]:
    return route_of(settle(gw, n, route=route), route)


def pairs(gw: RunningGateway, route: str) -> list[dict[str, Any]]:
    with admin(gw) as a:
        data: list[dict[str, Any]] = a.get(
            "/admin/shadow/pairs", params={"route": route, "limit": 10_000}
        ).json()["data"]
        return data


def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=10).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_the_client_gets_the_primary_answer_unchanged(gw: RunningGateway) -> None:
    answers = send(gw, "unchanged", range(1, 6))
    assert answers == [f'{{"item":{i},"label":"positive"}}' for i in range(1, 6)]
    assert report(gw, "unchanged", 5)["counts"]["paired"] == 5
    assert {p["candidate"]["ok"] for p in pairs(gw, "unchanged")} == {True}


def test_a_failing_candidate_is_a_pair_counted_against_the_candidate(gw: RunningGateway) -> None:
    send(gw, "candfail", range(11, 21))
    r = report(gw, "candfail", 10)
    assert (r["counts"]["candidate_failed"], r["counts"]["paired"]) == (10, 0)
    assert r["errors"]["candidate_error_rate"]["estimate"] == 1.0
    assert r["errors"]["candidate_errors_by_type"] == {"http_5xx": 10}


def test_a_failed_primary_is_recorded_with_its_reason_and_excluded(gw: RunningGateway) -> None:
    with sdk(gw) as client:
        for i in range(21, 26):
            with pytest.raises(openai.InternalServerError):
                ask(client, i, model="f-primfail")
    r = report(gw, "primfail", 5)
    assert (r["counts"]["primary_failed"], r["counts"]["quality_pairs"]) == (5, 0)
    assert r["counts"]["excluded_by_reason"] == {"http_5xx": 5}
    assert r["comparators"]["json_valid"]["n"] == 0


def test_a_primary_served_by_a_fallback_is_excluded_as_such(gw: RunningGateway) -> None:
    send(gw, "fallback", range(31, 36))
    r = report(gw, "fallback", 5)
    assert r["counts"]["excluded_by_reason"] == {"fallback": 5}
    assert all(p["primary"]["fallbacks"] == 1 for p in pairs(gw, "fallback"))


def test_dropped_shadows_are_counted_and_still_recorded_as_pairs(gw: RunningGateway) -> None:
    send(gw, "drops", range(41, 53), workers=12)
    c = report(gw, "drops", 12)["counts"]
    assert c["paired"] + c["dropped"] == 12
    assert c["dropped"] >= 6 and set(c["dropped_by_reason"]) == {"queue_full"}
    assert metric(gw, "pointsman_shadow_dropped_total", route="drops", reason="queue_full") == c["dropped"]
    assert metric(gw, "pointsman_shadow_pairs_total", route="drops", outcome="dropped") == c["dropped"]


def test_a_hanging_candidate_leaves_primary_latency_unchanged_and_the_queue_bounded(
    gw: RunningGateway,
) -> None:
    shadowed: list[float] = []
    plain: list[float] = []
    depth: list[tuple[int, int]] = []
    with sdk(gw) as client, admin(gw) as a:
        for i in range(101, 121):
            for route, out in (("hang", shadowed), ("plain", plain)):
                t0 = time.perf_counter()
                ask(client, i if route == "hang" else 1000 + i, model=f"f-{route}")
                out.append(time.perf_counter() - t0)
            lanes = a.get("/admin/shadow/status").json()["lanes"]["hang"]
            depth.append((lanes["in_flight"], lanes["queued"]))
    assert max(d[0] for d in depth) <= 2 and max(d[1] for d in depth) <= 2
    assert linear_percentile(shadowed, 50) < linear_percentile(plain, 50) + 0.02
    assert linear_percentile(shadowed, 90) < linear_percentile(plain, 90) + 0.03
    r = report(gw, "hang", 20)
    assert r["counts"]["dropped"] >= 4
    assert r["counts"]["candidate_failed"] == 20 - r["counts"]["dropped"]
    assert r["errors"]["candidate_errors_by_type"] == {"timeout": r["counts"]["candidate_failed"]}


def test_an_unreachable_candidate_fails_pairs_not_requests(gw: RunningGateway) -> None:
    answers = send(gw, "dead", range(61, 66))
    assert all(a.startswith('{"item"') for a in answers)
    r = report(gw, "dead", 5)
    assert r["counts"]["candidate_failed"] == 5
    assert r["errors"]["candidate_errors_by_type"] == {"connect": 5}


def test_the_daily_budget_stops_shadows(gw: RunningGateway) -> None:
    with sdk(gw) as client:
        for i in range(71, 81):
            ask(client, i, model="f-budget")
            time.sleep(0.02)  # the instant candidate is paid before the next request
    r = report(gw, "budget", 10)
    assert r["counts"]["paired"] == BUDGET_CALLS
    assert r["counts"]["dropped_by_reason"] == {"budget": 10 - BUDGET_CALLS}
    assert metric(gw, "pointsman_shadow_dropped_total", route="budget", reason="budget") == 10 - BUDGET_CALLS


def test_sampling_follows_the_rate_by_request_id(gw: RunningGateway) -> None:
    send(gw, "sample", range(2001, 2201), workers=16)
    with admin(gw) as a:
        deadline = time.time() + 10
        while time.time() < deadline:
            counters = a.get("/admin/shadow/status").json()["counters"]
            if counters["written"] == counters["sampled"]:
                break
            time.sleep(0.05)
        r = route_of(a.get("/admin/shadow/report", params={"route": "sample"}).json(), "sample")
    assert r["cost"]["requests_seen"] == 200
    # 200 draws at p = 0.25: 50 expected, sd ~6.1; the hash of the request id is fixed, so this is deterministic
    assert 30 <= r["counts"]["sampled"] <= 70
