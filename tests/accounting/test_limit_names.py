"""Budgets and rate limits name one key or team exactly: a name that looks like a pattern is a config error with
its path (it would otherwise be an exact name no key has, and the keys it was meant for would run unlimited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from tests.conftest import basic_config


def check(tmp_path: Path, accounting: dict[str, Any]) -> int:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(basic_config("http://127.0.0.1:9/v1", accounting=accounting)))
    return main(["check-config", str(path)])


def test_a_rate_limit_naming_a_key_pattern_is_refused_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(tmp_path, {"rate_limits": [{"key": "batch-*", "requests_per_min": 10}]}) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "accounting.rate_limits[0].key" in text and "'batch-*' looks like a pattern" in text


def test_a_budget_naming_a_team_pattern_is_refused_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(tmp_path, {"budgets": [{"scope": "team", "name": "eng-?", "daily_usd": "5"}]}) != 0
    out = capsys.readouterr()
    assert "accounting.budgets[0].name" in out.out + out.err


def test_the_every_key_rate_limit_is_accepted(tmp_path: Path) -> None:
    assert check(tmp_path, {"rate_limits": [{"key": "*", "requests_per_min": 10}]}) == 0
