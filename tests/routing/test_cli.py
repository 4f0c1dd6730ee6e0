"""``pointsman routes list|explain|apply|history|rollback`` against a running gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from tests.conftest import ADMIN_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.routing.conftest import admin, chat, sdk, two_backend_config

RULES = [
    {"name": "summaries", "match": {"tags": {"task": "summarize"}}, "targets": [{"model": "m-secondary"}]},
    {
        "name": "canary",
        "match": {"model": "gpt-*"},
        "targets": [{"model": "m-primary", "weight": 95}, {"model": "m-secondary", "weight": 5}],
        "fallbacks": ["alias"],
    },
]


@pytest.fixture(scope="module")
def gw(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    """One gateway for the module: each test starts from the version it finds."""
    with RunningGateway(two_backend_config(*shared_upstreams)) as g:
        yield g


def version(gw: Any) -> int:
    v: int = admin(gw).get("/admin/routes").json()["version"]
    return v


def routes(gw: Any, *args: str) -> int:
    return main(["routes", *args, "--url", gw.url, "--admin-key", ADMIN_KEY])


def test_apply_replaces_the_rules_and_takes_effect(
    gw: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "routes.yaml"
    f.write_text(yaml.safe_dump({"routes": RULES}))
    before = version(gw)
    assert routes(gw, "apply", str(f)) == 0
    assert f"applied: 2 rules, policy version {before + 1}" in capsys.readouterr().out
    assert chat(sdk(gw), extra_headers={"X-Pointsman-Task": "summarize"})["x-pointsman-route"] == "summaries"


def test_apply_of_an_invalid_file_prints_the_failing_path(
    gw: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "routes.yaml"
    f.write_text(yaml.safe_dump([{**RULES[0], "targets": [{"model": "m-secondary", "weight": -1}]}]))
    assert routes(gw, "apply", str(f)) == 1
    assert "routes[0].targets[0].weight" in capsys.readouterr().err


def test_list_shows_rules_in_order(gw: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "routes.yaml"
    f.write_text(yaml.safe_dump(RULES))
    routes(gw, "apply", str(f))
    capsys.readouterr()
    assert routes(gw, "list") == 0
    out = capsys.readouterr().out
    assert out.index("summaries") < out.index("canary")
    assert "m-primary:95, m-secondary:5" in out
    assert "task=summarize" in out


def test_explain_names_the_rule_and_candidates(
    gw: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "routes.yaml"
    f.write_text(yaml.safe_dump(RULES))
    routes(gw, "apply", str(f))
    capsys.readouterr()
    assert routes(gw, "explain", "--model", "gpt-4o-mini", "--sticky", "abc") == 0
    out = capsys.readouterr().out
    assert "route:     canary (rule #1): matched model=gpt-*" in out
    assert "m-primary weight 95 (95.0%)" in out
    assert "fallbacks: alias" in out


def test_history_and_rollback(gw: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty, full = tmp_path / "empty.yaml", tmp_path / "routes.yaml"
    empty.write_text("routes: []\n")
    full.write_text(yaml.safe_dump(RULES))
    routes(gw, "apply", str(empty))
    base = version(gw)
    routes(gw, "apply", str(full))
    capsys.readouterr()
    assert routes(gw, "rollback", str(base)) == 0
    assert f"now policy version {base + 2} (0 rules)" in capsys.readouterr().out
    assert routes(gw, "history") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith(f"* {base + 2}") and f"rollback to version {base}" in out[2]
    assert "replace all routes (2)" in out[3]


def test_wrong_admin_key_exits_non_zero(gw: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "list", "--url", gw.url, "--admin-key", "sk-wrong-key-123"]) == 1
    assert "401" in capsys.readouterr().err


def test_url_and_key_come_from_the_environment(
    gw: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POINTSMAN_URL", gw.url)
    monkeypatch.setenv("POINTSMAN_ADMIN_KEY", ADMIN_KEY)
    assert main(["routes", "list"]) == 0
    assert f"policy version {version(gw)}," in capsys.readouterr().out
