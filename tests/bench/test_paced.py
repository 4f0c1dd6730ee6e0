"""The feature rows' paced load: wrk's script pauses each connection between requests, and the report gives each
row's CPU per request at that one load beside the figures at its own maximum."""

from __future__ import annotations

from pathlib import Path

from tests.bench import readme, report, wrk
from tests.bench.targets import feature_name


def test_a_paced_script_makes_each_connection_pause_between_requests(tmp_path: Path) -> None:
    text = wrk.write_script(tmp_path / "paced.lua", stream=False, pause_ms=30).read_text()
    assert "function delay()\n  return 30\nend" in text


def test_an_unpaced_script_sends_as_fast_as_answers_come(tmp_path: Path) -> None:
    assert "delay" not in wrk.write_script(tmp_path / "rps.lua", stream=False).read_text()


def test_the_feature_report_gives_the_all_row_at_one_paced_load_beside_its_maximum() -> None:
    row = {"rps": 4000.0, "rps_cpu_us": 240.0, "rps_cpu_us_x_defaults": 1.8, "paced": 2000.0}
    row |= {
        "paced_cpu_us": 270.0,
        "paced_cpu_us_x_defaults": 1.4,
        "paced_pause_ms": 30,
        "paced_connections": 64,
    }
    base = {"rps": 8000.0, "rps_cpu_us": 133.0, "paced": 2001.0, "paced_cpu_us": 193.0}
    text = report.features_text({feature_name("defaults"): base, feature_name("all"): row})
    assert "FAIL  all features on: CPU per request <= 1.25x defaults  (1.80x)" in text
    assert "64 connections pausing 30 ms between requests: 1.40x" in text
    assert "1.40x" in readme.features_markdown({feature_name("all"): row}).replace("×", "x")
