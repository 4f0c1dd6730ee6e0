"""One GPU-hour rule: a self-hosted model's pricing entry wins over its backend's ``gpu_hour_usd``, and the admin
pricing report shows exactly the price that is charged (through a running gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

MTOK = Decimal(1_000_000)


@pytest.fixture
def gw(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    cfg: dict[str, Any] = basic_config(
        upstream.url,
        server={"data_dir": str(tmp_path)},
        accounting={
            "pricing": {
                "own-priced": {"gpu_hour_usd": "3.00", "gpu_count": 2, "throughput_tokens_per_s": 1000},
                "own-plain": {"throughput_tokens_per_s": 1000},
            }
        },
    )
    cfg["backends"]["gpu"] = {
        "type": "vllm",
        "endpoints": [upstream.url],
        "gpu_hour_usd": "2.00",
        "gpu_count": 1,
    }
    cfg["models"]["own-priced"] = {"backend": "gpu", "upstream_model": "gpt-4o-mini"}
    cfg["models"]["own-plain"] = {"backend": "gpu", "upstream_model": "gpt-4o-mini-plain"}
    with RunningGateway(cfg) as g:
        yield g


def charged_per_token(gw: RunningGateway, model: str) -> Decimal:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "x"}]
        )
    tokens = int(raw.headers["x-pointsman-tokens-input"]) + int(raw.headers["x-pointsman-tokens-output"])
    return Decimal(raw.headers["x-pointsman-cost-usd"]) / tokens


def reported(gw: RunningGateway) -> dict[str, dict[str, Any]]:
    r = httpx.get(gw.url + "/admin/backends/gpu/pricing", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    return {m["model"]: m for m in r.json()["models"]}


def test_a_models_gpu_hour_price_wins_over_its_backends(gw: RunningGateway) -> None:
    assert charged_per_token(gw, "own-priced") == Decimal("3.00") * 2 / 3600 / 1000
    assert charged_per_token(gw, "own-plain") == Decimal("2.00") * 1 / 3600 / 1000


def test_the_pricing_report_shows_what_is_charged(gw: RunningGateway) -> None:
    report = reported(gw)
    for model in ("own-priced", "own-plain"):
        per_token = charged_per_token(gw, model)
        entry = report[model]
        assert (
            Decimal(entry["input_per_mtok_usd"]) == Decimal(entry["output_per_mtok_usd"]) == per_token * MTOK
        )
        gpu = Decimal(entry["gpu_hour_usd"]) * entry["gpu_count"] / 3600 / 1000
        assert gpu == per_token, entry
    assert (report["own-priced"]["gpu_hour_usd"], report["own-priced"]["gpu_hour_from"]) == (
        "3.00",
        "pricing",
    )
    assert (report["own-plain"]["gpu_hour_usd"], report["own-plain"]["gpu_hour_from"]) == ("2.00", "backend")
