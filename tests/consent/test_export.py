"""Dataset exports obey third-party consent: the fine-tuning files (made for a provider) leave out the captured
requests of a team without approval, counted in the manifest, unless the dataset is declared in-house."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.cli import main as cli_main
from tests.conftest import CLIENT_KEY
from tests.consent.conftest import ADMIN, OTHER_KEY, chat, consent_config, decide
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

ROUTES = [
    {
        "name": "support",
        "match": {"tags": {"task": "support"}},
        "targets": [{"model": "llama-a"}],
        "capture": {"sample_rate": 1.0},
    }
]


@pytest.fixture(scope="module")
def gw(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    cfg = consent_config(*upstreams, routes=ROUTES)
    cfg["server"] = {"data_dir": str(tmp_path_factory.mktemp("export"))}
    with RunningGateway(cfg) as g:
        for team in ("growth", "search"):  # both consent to capture; only search to third-party processing
            r = httpx.post(f"{g.url}/admin/teams/{team}/capture", headers=ADMIN, json={"approved_by": "x"})
            assert r.status_code == 200
        decide(g.url, "team", "search", True)
        for i in range(3):
            for key, team in ((CLIENT_KEY, "growth"), (OTHER_KEY, "search")):
                msgs = [{"role": "user", "content": f"Question {i} from {team}."}]
                assert chat(g.url, "llama-a", "support", key=key, messages=msgs).status_code == 200
        assert httpx.post(f"{g.url}/admin/capture/flush", headers=ADMIN, timeout=30).json()["flushed"]
        yield g


def export(gw: RunningGateway, **params: Any) -> dict[str, Any]:
    r = httpx.get(
        gw.url + "/admin/datasets/export",
        headers=ADMIN,
        params={"task": "support", "holdout": 0, "format": "json", **params},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_an_export_leaves_out_teams_without_third_party_consent(gw: RunningGateway) -> None:
    counts = export(gw)["manifest"]["counts"]
    assert counts["examples"]["total"] == 3
    assert counts["skipped"] == {"third_party_not_approved": 3}


def test_an_in_house_export_includes_every_captured_team(gw: RunningGateway) -> None:
    doc = export(gw, in_house="true")
    assert doc["manifest"]["counts"]["examples"]["total"] == 6
    assert doc["manifest"]["filters"]["in_house"] is True


def test_the_cli_export_from_the_capture_file_obeys_the_recorded_consent(
    gw: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Path(gw.config.server.data_dir) / "capture.sqlite3"
    cfg = tmp_path / "pointsman.yaml"
    cfg.write_text("consent: {third_party: required}\n")
    out = tmp_path / "out"
    argv = ["dataset", "export", "--task", "support", "--since", "1d", "--holdout", "0"]
    assert cli_main([*argv, "--out", str(out), "--capture-db", str(db), "--config", str(cfg)]) == 0
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["counts"]["examples"]["total"] == 3
    assert manifest["counts"]["skipped"] == {"third_party_not_approved": 3}
    assert "third_party_not_approved 3" in capsys.readouterr().out
