"""``GET /admin/pricing`` and ``pointsman pricing``: each configured model's price per token class and tier, where
it comes from, the unpriced ones, and the price table in force — the bundled one or a newer copy named by
``accounting.price_table`` (through a running gateway, and from a config file)."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from accounting.price_table import litellm_table_path
from gateway.cli.main import main
from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway


def pricing_config(upstream: FakeOpenAI, tmp_path: Path, **accounting: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = basic_config(
        upstream.url, server={"data_dir": str(tmp_path)}, accounting=accounting
    )
    cfg["backends"]["gpu"] = {"type": "vllm", "endpoints": [upstream.url], "gpu_hour_usd": "3.60"}
    cfg["models"].update(
        {
            "gpt-5.4": {"backend": "up"},
            "cheap": {"backend": "up", "upstream_model": "gpt-4o"},
            "gpt-9-preview": {"backend": "up"},
            "own": {"backend": "gpu", "upstream_model": "meta/llama"},
        }
    )
    cfg["accounting"].setdefault("pricing", {}).update(
        {"cheap": {"input_per_mtok": "1", "output_per_mtok": "2"}, "own": {"throughput_tokens_per_s": 1000}}
    )
    return cfg


@pytest.fixture
def report(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with RunningGateway(pricing_config(upstream, tmp_path)) as gw:
        r = httpx.get(gw.url + "/admin/pricing", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 200, r.text
        yield r.json()


def test_the_report_names_the_bundled_table_and_its_version(report: dict[str, Any]) -> None:
    assert report["table"]["origin"] == "bundled"
    assert report["table"]["version"] == importlib.metadata.version("litellm")
    assert report["table"]["path"] == str(litellm_table_path()) and len(report["table"]["sha256"]) == 16


def test_each_model_shows_its_price_per_class_and_tier_and_its_source(report: dict[str, Any]) -> None:
    by = {m["model"]: m for m in report["data"]}
    g = by["gpt-5.4"]
    assert (g["source"], g["from"]) == ("table", "price table entry 'gpt-5.4'")
    assert g["per_mtok"]["standard"]["input"] == "2.5" and g["per_mtok"]["standard"]["cached_input"] == "0.25"
    assert g["per_mtok"]["flex"]["output"] == "7.5" and g["per_mtok"]["priority"]["output"] == "30"
    assert g["long_context"]["272000"]["input"] == "5"
    c = by["cheap"]
    assert c["source"] == "config" and c["from"].startswith(
        "accounting.pricing['cheap'] over price table entry"
    )
    assert (c["per_mtok"]["standard"]["input"], c["per_mtok"]["standard"]["output"]) == ("1", "2")
    o = by["own"]
    assert o["source"] == "gpu" and "$3.60/h x 1 GPU(s) (backend 'gpu')" in o["from"]
    assert o["per_mtok"]["standard"]["output"] == "1"  # 3.60 / 3600 / 1000 tokens/s = $1 per million


def test_unpriced_models_are_listed_with_the_fix(report: dict[str, Any]) -> None:
    assert report["unpriced"] == ["gpt-9-preview"]
    (m,) = [m for m in report["data"] if m["model"] == "gpt-9-preview"]
    assert m["priced"] is False and "accounting.pricing['gpt-9-preview']" in m["fix"]
    assert [g["model"] for g in report["globs"]] == ["fake-*"]


def test_a_newer_price_table_file_is_used_and_shown(upstream: FakeOpenAI, tmp_path: Path) -> None:
    bundled = litellm_table_path()
    assert bundled is not None
    table = json.loads(bundled.read_text())
    table["gpt-4o-mini"] = {
        **table["gpt-4o-mini"],
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 2e-06,
    }
    table["gpt-9-preview"] = {"input_cost_per_token": 3e-06, "output_cost_per_token": 6e-06, "mode": "chat"}
    newer = tmp_path / "prices-2026-12.json"
    newer.write_text(json.dumps(table))
    cfg = pricing_config(upstream, tmp_path, price_table=str(newer))
    with RunningGateway(cfg) as gw:
        doc = httpx.get(gw.url + "/admin/pricing", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
        assert (doc["table"]["origin"], doc["table"]["path"], doc["table"]["version"]) == (
            "file",
            str(newer),
            None,
        )
        assert doc["unpriced"] == []  # the newer table lists gpt-9-preview
        with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
            raw = c.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        # the fake reports 11 prompt + 7 completion tokens: at $1 / $2 per million from the newer table
        assert raw.headers["x-pointsman-cost-usd"].rstrip("0") == "0.000025"


def test_cli_pricing_from_a_config_file_prints_the_table_and_fails_on_unpriced_models(
    upstream: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pointsman.yaml"
    path.write_text(yaml.safe_dump(pricing_config(upstream, tmp_path)))
    assert main(["pricing", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("price table: bundled with litellm")
    line = next(ln for ln in out.splitlines() if ln.startswith("gpt-5.4 "))
    assert line.split()[:5] == ["gpt-5.4", "up", "table", "2.5", "0.25"] and "flex,priority,batch" in line
    assert ">272k" in line
    assert "gpt-9-preview" in out and "UNPRICED" in out


def test_cli_pricing_asks_a_running_gateway(
    upstream: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = pricing_config(upstream, tmp_path)
    del cfg["models"]["gpt-9-preview"]
    with RunningGateway(cfg) as gw:
        assert main(["pricing", "--url", gw.url, "--admin-key", ADMIN_KEY, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["object"] == "pricing" and doc["unpriced"] == []
