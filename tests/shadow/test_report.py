"""The report through a running gateway: one campaign of 100 requests (every 5th streamed, two tasks) against a
frontier model and a candidate that is 2x faster, 10x cheaper and answers every 10th item with invalid JSON.
Each test checks one part of the report against what the fakes actually did."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import main as cli_main
from tests.conftest import ADMIN_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import (
    admin,
    config,
    drive,
    linear_percentile,
    price,
    route_of,
    settle,
    wilson,
    zoo_models,
)
from tests.shadow.fakes import ModelZoo

N = 100
STREAMED = {i for i in range(1, N + 1) if i % 5 == 0}


class Campaign:
    def __init__(self, gw: RunningGateway, zoo: ModelZoo, report: dict[str, Any], data_dir: Path) -> None:
        self.gw, self.zoo, self.report, self.data_dir = gw, zoo, report, data_dir
        self.route = route_of(report)

    def pairs(self) -> list[dict[str, Any]]:
        with admin(self.gw) as a:
            data: list[dict[str, Any]] = a.get("/admin/shadow/pairs", params={"limit": 10_000}).json()["data"]
            return data


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    zoo = ModelZoo(zoo_models()).start()
    data_dir = tmp_path_factory.mktemp("shadow-report")
    cfg = config(
        zoo,
        data_dir,
        shadow={
            "model": "cand",
            "sample_rate": 1.0,
            "max_concurrency": 32,
            "compare": ["json_valid", "exact", "token_f1"],
        },
        promote_when={
            "min_pairs": 50,
            "scores": {"json_valid": {"min": 0.8}},
            "max_candidate_error_rate": 0.05,
            "max_latency_p95_ratio": 1.0,
            "max_cost_ratio": 0.5,
            "decide_on": "ci",
        },
    )
    with RunningGateway(cfg) as gw:
        drive(
            gw,
            range(1, N + 1),
            stream=lambda i: i in STREAMED,
            task=lambda i: "invoices" if i % 2 else "receipts",
        )
        report = settle(gw, N)
        yield Campaign(gw, zoo, report, data_dir)
    zoo.stop()


def test_every_sampled_request_has_exactly_one_pair_keyed_by_its_request_id(campaign: Campaign) -> None:
    ids = sorted(p["id"] for p in campaign.pairs())
    assert ids == sorted(f"req-{i}" for i in range(1, N + 1))
    with admin(campaign.gw) as a:
        assert a.get("/admin/shadow/pairs/req-7").json()["outcome"] == "paired"


def test_counts_match_the_traffic(campaign: Campaign) -> None:
    c = campaign.route["counts"]
    assert (c["sampled"], c["paired"], c["candidate_failed"], c["primary_failed"], c["dropped"]) == (
        N,
        N,
        0,
        0,
        0,
    )
    assert c["streamed"] == len(STREAMED)


def test_json_valid_pass_rate_and_wilson_interval_match_what_the_candidate_sent(campaign: Campaign) -> None:
    served = campaign.zoo.served("cand")
    valid = sum(1 for s in served if s.valid_json)
    assert len(served) == N and valid == 90
    s = campaign.route["comparators"]["json_valid"]
    assert s["n"] == N
    assert s["pass_rate"] == pytest.approx(valid / N)
    assert s["ci95"] == pytest.approx(list(wilson(valid, N)), abs=1e-12)


def test_single_sided_comparator_reports_the_primary_as_baseline(campaign: Campaign) -> None:
    base = campaign.route["comparators"]["json_valid"]["baseline"]
    assert (base["pass_rate"], base["n"]) == (1.0, N)


def test_score_comparator_mean_has_a_t_interval(campaign: Campaign) -> None:
    vals = [p["scores"]["token_f1"] for p in campaign.pairs()]
    s = campaign.route["comparators"]["token_f1"]
    n = len(vals)
    mean = sum(vals) / n
    sd = (sum((v - mean) ** 2 for v in vals) / (n - 1)) ** 0.5
    half = 1.9842169515086827 * sd / n**0.5  # Student's t, 0.975 quantile, 99 degrees of freedom
    assert s["mean"] == pytest.approx(mean)
    assert s["ci95"] == pytest.approx([mean - half, mean + half], rel=1e-9)


def test_latency_percentiles_are_those_of_the_pair_records(campaign: Campaign) -> None:
    pairs = campaign.pairs()
    total = campaign.route["latency"]["total"]
    for side in ("primary", "candidate"):
        xs = [p[side]["latency_s"] for p in pairs]
        for q in (50, 95, 99):
            assert total[side][f"p{q}"] == pytest.approx(linear_percentile(xs, q))


def test_latencies_reflect_a_candidate_twice_as_fast(campaign: Campaign) -> None:
    total = campaign.route["latency"]["total"]
    assert 0.06 <= total["primary"]["p50"] < 0.2
    assert 0.03 <= total["candidate"]["p50"] < 0.12
    ratio = total["paired_ratio"]
    assert 0.3 < ratio["median"] < 0.8
    assert ratio["ci95"][0] < ratio["geomean"] < ratio["ci95"][1]


def test_streamed_requests_get_streamed_shadows_with_ttft_on_both_sides(campaign: Campaign) -> None:
    streamed_items = {s.item for s in campaign.zoo.served("cand") if s.stream}
    assert streamed_items == STREAMED
    pairs = [p for p in campaign.pairs() if p["stream"]]
    assert len(pairs) == len(STREAMED)
    assert all(p["primary"]["ttft_s"] and p["candidate"]["ttft_s"] for p in pairs)
    ttft = campaign.route["latency"]["ttft"]
    assert ttft["primary"]["n"] == ttft["candidate"]["n"] == len(STREAMED)


def test_cost_per_thousand_requests_matches_usage_times_price(campaign: Campaign) -> None:
    cost = campaign.route["cost"]
    assert Decimal(cost["primary_per_1k_usd"]) == price("frontier", 20, 10) * 1000
    assert Decimal(cost["candidate_per_1k_usd"]) == price("cand", 20, 10) * 1000
    assert cost["cost_ratio"] == pytest.approx(0.1)


def test_projected_monthly_saving_is_saving_per_request_times_observed_volume(campaign: Campaign) -> None:
    cost = campaign.route["cost"]
    assert cost["requests_seen"] == N
    volume = N / cost["observed_span_s"] * 30 * 86400
    assert cost["monthly_volume"] == pytest.approx(volume)
    per_request = price("frontier", 20, 10) - price("cand", 20, 10)
    assert Decimal(cost["projected_monthly_saving_usd"]) == pytest.approx(
        per_request * Decimal(volume), rel=Decimal("1e-9")
    )


def test_verdict_is_ready_when_every_criterion_holds(campaign: Campaign) -> None:
    v = campaign.route["verdict"]
    assert v["verdict"] == "ready", v
    assert {c["name"]: c["status"] for c in v["criteria"]} == {
        "min_pairs": "pass",
        "score:json_valid": "pass",
        "candidate_error_rate": "pass",
        "latency_p95_ratio": "pass",
        "cost_ratio": "pass",
    }


def test_report_breaks_down_by_task(campaign: Campaign) -> None:
    tasks = {t["task"]: t for t in campaign.route["tasks"]}
    assert set(tasks) == {"invoices", "receipts"}
    assert tasks["invoices"]["counts"]["sampled"] == tasks["receipts"]["counts"]["sampled"] == N // 2
    # items 10, 20, ... are even: every invalid answer is a receipt
    assert tasks["receipts"]["comparators"]["json_valid"]["pass_rate"] == pytest.approx(40 / 50)
    assert tasks["invoices"]["comparators"]["json_valid"]["pass_rate"] == 1.0


def test_prometheus_counts_pairs_and_publishes_the_verdict(campaign: Campaign) -> None:
    with admin(campaign.gw) as a:
        a.get("/admin/shadow/report").raise_for_status()  # publishes the gauges
    text = httpx.get(campaign.gw.url + "/metrics", timeout=10).text
    samples = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]
    paired = sum(
        v for n, lab, v in samples if n == "pointsman_shadow_pairs_total" and lab["outcome"] == "paired"
    )
    assert paired == N
    verdict = {lab["verdict"]: v for n, lab, v in samples if n == "pointsman_shadow_verdict"}
    assert verdict == {"ready": 1.0, "not_ready": 0.0, "insufficient_data": 0.0}
    count = sum(
        v
        for n, lab, v in samples
        if n == "pointsman_shadow_score_count" and lab["comparator"] == "json_valid"
    )
    assert count == N
    ratio = next(v for n, lab, v in samples if n == "pointsman_shadow_latency_ratio")
    assert ratio == pytest.approx(campaign.route["latency"]["total"]["p50_ratio"], rel=0.2)


def test_shadow_tokens_and_dollars_are_accounted_separately(campaign: Campaign) -> None:
    r = httpx.get(
        campaign.gw.url + "/admin/spend",
        params={"group_by": "shadow"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    ).json()
    rows = {str(row["shadow"]): row for row in r["data"]}
    shadow = rows.get("1") or rows.get("True") or rows.get("true")
    client = rows.get("0") or rows.get("False") or rows.get("false")
    assert shadow is not None and client is not None, rows
    assert shadow["requests"] == client["requests"] == N
    assert Decimal(shadow["cost_usd"]) == price("cand", 20, 10) * N
    assert Decimal(client["cost_usd"]) == price("frontier", 20, 10) * N


def test_html_report_draws_charts_from_the_same_numbers(campaign: Campaign) -> None:
    with admin(campaign.gw) as a:
        page = a.get("/admin/shadow/report.html").text
    assert (
        page.startswith("<!doctype html>")
        and "<script src" not in page
        and "http" not in page.split("<body>")[1]
    )
    for title in (
        "Total latency distribution",
        "Time to first token distribution",
        "Comparator scores over time",
        "Cost per 1,000 requests",
    ):
        assert title in page
    assert page.count("<svg") == 4
    embedded = page.split('<script type="application/json" id="shadow-report">')[1].split("</script>")[0]
    doc = orjson.loads(embedded.replace("<\\/", "</"))
    assert route_of(doc)["counts"] == campaign.route["counts"]


def test_cli_report_prints_a_readable_table(campaign: Campaign, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(
        ["shadow", "report", "--url", campaign.gw.url, "--admin-key", ADMIN_KEY, "--route", "extract"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "route extract: candidate cand vs frontier" in out
    assert "verdict: READY" in out
    assert "json_valid" in out and "0.900" in out
    assert "projected monthly saving" in out


def test_report_window_excludes_older_pairs(campaign: Campaign) -> None:
    later = max(p["ts"] for p in campaign.pairs()) + 1
    with admin(campaign.gw) as a:
        doc = a.get("/admin/shadow/report", params={"from": str(later)}).json()
    assert route_of(doc)["counts"]["sampled"] == 0
    assert not math.isnan(doc["window"]["from"])


@pytest.mark.parametrize("path", ["/admin/shadow/report", "/admin/shadow/report.html", "/admin/spend"])
@pytest.mark.parametrize("bound", [{"from": "1e100"}, {"from": "-1e100"}, {"to": "1e300"}])
def test_a_window_past_the_years_reports_can_name_is_400(
    campaign: Campaign, path: str, bound: dict[str, str]
) -> None:
    with admin(campaign.gw) as a:
        r = a.get(path, params=bound)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "invalid_value"
