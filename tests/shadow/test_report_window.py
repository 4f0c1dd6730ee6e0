"""A route with more pairs in the report's window than ``shadow.report_max_pairs``: the report reads the latest
of them, and every figure of the route (and the page, the CLI table) says which span it covers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as cli_main
from tests.conftest import ADMIN_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import admin, config, drive, route_of, zoo_models
from tests.shadow.fakes import ModelZoo

SENT = 25
CAP = 10


class Capped:
    def __init__(self, gw: RunningGateway, report: dict[str, Any], pairs: list[dict[str, Any]]) -> None:
        self.gw, self.report, self.pairs = gw, report, pairs
        self.route = route_of(report)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capped]:
    zoo = ModelZoo(zoo_models()).start()
    cfg = config(
        zoo,
        tmp_path_factory.mktemp("capped"),
        shadow={"model": "cand", "sample_rate": 1.0, "compare": ["json_valid"], "report_max_pairs": CAP},
        promote_when={"min_pairs": 5, "scores": {"json_valid": {"min": 0.5}}},
    )
    with RunningGateway(cfg) as gw:
        drive(gw, range(1, SENT + 1), workers=1)
        with admin(gw) as a:
            deadline = time.time() + 20
            while True:
                report = a.get("/admin/shadow/report").json()
                if route_of(report)["window"]["pairs_in_window"] == SENT or time.time() > deadline:
                    break
                time.sleep(0.05)
            pairs = a.get("/admin/shadow/pairs", params={"limit": 1000}).json()["data"]
        yield Capped(gw, report, sorted(pairs, key=lambda p: p["ts"]))
    zoo.stop()


def test_the_report_reads_only_the_latest_pairs_of_a_route(capped: Capped) -> None:
    w = capped.route["window"]
    assert (w["capped"], w["pairs_analysed"], w["pairs_in_window"], w["max_pairs"]) == (True, CAP, SENT, CAP)
    assert capped.route["counts"]["sampled"] == CAP


def test_a_capped_window_starts_at_the_oldest_pair_read(capped: Capped) -> None:
    assert len(capped.pairs) == SENT
    assert capped.route["window"]["from"] == capped.pairs[-CAP]["ts"]


def test_the_page_says_which_span_a_capped_route_covers(capped: Capped) -> None:
    with admin(capped.gw) as a:
        page = a.get("/admin/shadow/report.html").text
    assert f"read the latest {CAP} of the {SENT} pairs in the window" in page


def test_the_cli_report_says_which_span_a_capped_route_covers(
    capped: Capped, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli_main(["shadow", "report", "--url", capped.gw.url, "--admin-key", ADMIN_KEY])
    assert rc == 0
    assert f"read the latest {CAP} of the {SENT} pairs in the window" in capsys.readouterr().out


def test_the_pairs_listing_returns_the_latest_pairs_oldest_first(capped: Capped) -> None:
    with admin(capped.gw) as a:
        got = a.get("/admin/shadow/pairs", params={"limit": 3}).json()["data"]
    assert [p["id"] for p in got] == [p["id"] for p in capped.pairs[-3:]]


def test_an_uncapped_route_says_its_window_is_the_requested_one(tmp_path: Path, zoo: ModelZoo) -> None:
    cfg = config(zoo, tmp_path, shadow={"model": "cand", "sample_rate": 1.0, "compare": ["json_valid"]})
    with RunningGateway(cfg) as gw:
        drive(gw, range(1, 4), workers=1)
        with admin(gw) as a:
            deadline = time.time() + 20
            while True:
                doc = a.get("/admin/shadow/report").json()
                if route_of(doc)["counts"]["sampled"] == 3 or time.time() > deadline:
                    break
                time.sleep(0.05)
    w = route_of(doc)["window"]
    assert (w["capped"], w["pairs_analysed"], w["pairs_in_window"]) == (False, 3, 3)
    assert w["from"] == doc["window"]["from"] and w["to"] == doc["window"]["to"]
