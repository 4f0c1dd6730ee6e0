"""Prices as data: the litellm table read without importing litellm, overrides, self-hosted prices, unpriced
models reported, and metric labels that stay bounded."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from accounting.catalog import BackendFacts, Catalog, ModelFacts
from accounting.config import AccountingConfig
from accounting.price_table import PriceTable
from accounting.pricing import MTOK, Pricing
from tests.accounting.observe import metric_sum, scrape
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from wire.usage import Usage


def test_price_table_is_read_without_importing_litellm() -> None:
    code = (
        "import sys\n"
        "from accounting.config import AccountingConfig\n"
        "from accounting.accountant import Accountant\n"
        "a = Accountant(AccountingConfig(), '/tmp/unused-ledger-dir')\n"
        "assert len(a.table.prices) > 1000, len(a.table.prices)\n"
        "assert a.estimator.encodings.get('o200k_base') is not None\n"
        "assert 'litellm' not in sys.modules, 'accounting imported litellm'\n"
        "print('ok')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def catalog() -> Catalog:
    return Catalog(
        backends={
            "oa": BackendFacts("oa", "openai", False),
            "anth": BackendFacts("anth", "litellm", False, provider="anthropic"),
            "gpu": BackendFacts("gpu", "vllm", True, gpu_hour_usd=Decimal("2.00"), gpu_count=4),
        },
        models={
            "mini": ModelFacts("mini", "oa", "gpt-4o-mini"),
            "llama": ModelFacts("llama", "gpu", "meta/llama"),
            "qwen": ModelFacts("qwen", "gpu", "qwen"),
            "mistral": ModelFacts("mistral", "gpu", "mistral"),
        },
    )


def test_overrides_table_and_self_hosted_resolution() -> None:
    table = PriceTable.load()
    cfg = AccountingConfig.model_validate(
        {
            "pricing": {
                "mini": {"input_per_mtok": "0.10"},  # partial: output and cached from the table
                "llama": {"throughput_tokens_per_s": 1000},
                "qwen": {"input_per_mtok": "0.05", "output_per_mtok": "0.20"},
            }
        }
    )
    p = Pricing(cfg, catalog(), table)
    mini = p.lookup("oa", "gpt-4o-mini")
    base = table.get("gpt-4o-mini")
    assert mini is not None and base is not None
    assert mini.input == Decimal("0.10") / MTOK and mini.output == base.output
    assert mini.cached_input == min(base.cached_input, mini.input)
    llama = p.lookup("gpu", "meta/llama")
    assert llama is not None and llama.source == "gpu"
    assert llama.output == Decimal("2.00") * 4 / 3600 / 1000
    qwen = p.lookup("gpu", "qwen")
    assert qwen is not None and qwen.output * MTOK == Decimal("0.20") and qwen.cached_input == qwen.input
    assert p.lookup("gpu", "mistral") is None and p.unpriced == ["mistral"]
    # a measured throughput reprices (and supersedes the configured one)
    newp = p.set_throughput("mistral", 500.0)
    assert newp is not None and newp.output == Decimal("2.00") * 4 / 3600 / Decimal("500.0")
    assert p.unpriced == []
    assert p.lookup("gpu", "mistral") == newp
    # the cost arithmetic: cached input at its own price
    u = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=400)
    assert mini.cost(u) == 600 * mini.input + 400 * mini.cached_input + 100 * mini.output
    # a frontier model not in the table is unpriced (None); self-hosted never falls back to the table
    assert p.lookup("oa", "no-such-model-xyz") is None
    assert p.lookup("gpu", "gpt-4o-mini") is None


def test_unpriced_self_hosted_model_warns_and_is_flagged(
    upstream: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = basic_config(upstream.url, server={"data_dir": str(tmp_path)})
    cfg["backends"]["gpu"] = {"type": "vllm", "endpoints": [upstream.url]}  # type: ignore[index]
    cfg["models"]["llama-free"] = {"backend": "gpu", "upstream_model": "gpt-4o-mini"}  # type: ignore[index]
    with caplog.at_level(logging.WARNING, logger="pointsman.accounting"), RunningGateway(cfg) as gw:
        assert any("'llama-free' has no price" in r.getMessage() for r in caplog.records)
        assert metric_sum(scrape(gw.url), "pointsman_model_unpriced", model="llama-free") == 1
        with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
            raw = c.chat.completions.with_raw_response.create(
                model="llama-free", messages=[{"role": "user", "content": "x"}]
            )
        assert raw.headers["x-pointsman-priced"] == "false" and "x-pointsman-cost-usd" not in raw.headers


def test_metric_labels_stay_bounded(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = basic_config(
        upstream.url, server={"data_dir": str(tmp_path)}, accounting={"task_allowlist": ["chat"]}
    )
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        for i in range(30):  # a scanner: random tasks and glob-matched model names
            c.chat.completions.create(
                model=f"fake-{i}",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-pointsman-task": f"t-{i}", "x-pointsman-tags": f"team=z{i}"},
            )
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-pointsman-task": "chat"},
        )
        samples = [s for s in scrape(gw.url) if s[0] == "pointsman_requests_total"]
        tasks = {s[1]["task"] for s in samples}
        models = {s[1]["requested_model"] for s in samples}
        assert tasks == {"other", "chat"}
        assert models == {"other", "gpt-4o-mini"}
        assert len(samples) == 2
        text = httpx.get(gw.url + "/metrics").text
        assert "sk-test" not in text and "sk-upstream" not in text  # no secrets in metrics


async def test_reconfigure_keeps_state_and_applies_new_prices(tmp_path: Path) -> None:
    from accounting.accountant import Accountant

    acct = Accountant(AccountingConfig(), str(tmp_path), catalog())
    assert acct.model_price("gpu", "mistral") is None
    acct.set_measured_throughput("mistral", 1000.0)
    measured = acct.model_price("gpu", "mistral")
    assert measured is not None and measured.source == "gpu"
    cfg = AccountingConfig.model_validate(
        {
            "pricing": {"mini": {"input_per_mtok": "9", "output_per_mtok": "9"}},
            "budgets": [{"scope": "team", "name": "t", "daily_usd": "1"}],
        }
    )
    acct.reconfigure(cfg, catalog())
    mini = acct.model_price("oa", "gpt-4o-mini")
    assert mini is not None and mini.input * MTOK == 9
    assert acct.model_price("gpu", "mistral") == measured  # the measurement survives the swap
    assert acct.limits.budgets[("team", "t")][0].limit == 1


def test_a_table_file_reports_the_digest_of_the_file_it_loaded(tmp_path: Path) -> None:
    f = tmp_path / "prices.json"
    f.write_text('{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}')
    info = PriceTable.load(str(f)).info
    assert info["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    assert (info["origin"], info["version"], info["models"]) == ("file", None, 1)


def test_a_table_file_replaced_after_it_was_loaded_reports_no_digest_rather_than_the_new_files(
    tmp_path: Path,
) -> None:
    f = tmp_path / "prices.json"
    f.write_text('{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}')
    table = PriceTable.load(str(f))
    f.write_text('{"m": {"input_cost_per_token": 5e-06, "output_cost_per_token": 9e-06}}')
    os.utime(f, ns=(1, 1))  # a different mtime, whatever the file system's clock resolution
    assert table.info["sha256"] is None
    assert table.get("m") is not None and table.get("m").input == Decimal("0.000001")  # what it loaded
