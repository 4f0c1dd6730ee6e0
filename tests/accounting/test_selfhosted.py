"""Measured self-hosted prices (``accounting.selfhosted``): a fleet scrape with enough tokens reprices every
model of its backend; a thin window keeps the last price; models added later get the measurement at once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from accounting.accountant import Accountant
from accounting.catalog import BackendFacts, Catalog, ModelFacts
from accounting.config import AccountingConfig
from serving.vllm.fleet import FleetThroughput


def fleet(**kw: float) -> FleetThroughput:
    """400 tokens/s over 2 endpoints in a 10 s window, unless told otherwise."""
    f: dict[str, float] = {
        "generation_tokens": 3000.0,
        "prompt_tokens": 1000.0,
        "generation_tps": 300.0,
        "prompt_tps": 100.0,
        **kw,
    }
    return FleetThroughput(
        "gpu",
        2,
        2,
        10.0,
        f["generation_tokens"],
        f["prompt_tokens"],
        f["generation_tps"],
        f["prompt_tps"],
        0.0,
        0.0,
    )


def catalog(*models: str) -> Catalog:
    return Catalog(
        backends={
            "gpu": BackendFacts(
                "gpu",
                "vllm",
                True,
                gpu_hour_usd=Decimal("3.60"),
                gpu_count=2,
                endpoints=("http://a/v1", "http://b/v1"),
                throughput_min_tokens=500,
            ),
            "cold": BackendFacts("cold", "vllm", True, endpoints=("http://c/v1",)),
        },
        models={m: ModelFacts(m, "gpu", m) for m in models},
    )


def test_a_measurement_prices_every_model_of_the_backend_per_endpoint(tmp_path: Path) -> None:
    acct = Accountant(AccountingConfig(), str(tmp_path), catalog("base", "lora"))
    assert acct.measured.metered_backends() == ["gpu"]  # "cold" has no GPU-hour price: nothing to measure
    assert acct.measured.observe("gpu", fleet())
    per_token = Decimal("3.60") * 2 / 3600 / Decimal("200.0")  # 400 tokens/s over 2 endpoints
    for m in ("base", "lora"):
        price = acct.model_price("gpu", m)
        assert price is not None and price.output == price.input == per_token
    doc = acct.measured.backend_report("gpu")
    assert doc is not None and doc["fleet_usd_per_hour"] == "14.40"
    assert doc["measured"]["tokens_per_s_per_endpoint"] == 200.0
    assert (
        Decimal(doc["measured"]["cost_per_generated_mtok_usd"]) == Decimal("14.40") / 3600 / 300 * 1_000_000
    )


def test_a_thin_window_keeps_the_last_price(tmp_path: Path) -> None:
    acct = Accountant(AccountingConfig(), str(tmp_path), catalog("base"))
    assert not acct.measured.observe("gpu", fleet(generation_tokens=100, prompt_tokens=100))
    assert acct.model_price("gpu", "base") is None
    assert acct.measured.observe("gpu", fleet())
    before = acct.model_price("gpu", "base")
    assert not acct.measured.observe("gpu", fleet(generation_tokens=10, prompt_tokens=10, generation_tps=1))
    assert acct.model_price("gpu", "base") == before
    assert acct.measured.backend_report("gpu")["last_scrape"]["generation_tokens"] == 10  # type: ignore[index]


def test_a_model_added_later_gets_the_measurement_in_force(tmp_path: Path) -> None:
    acct = Accountant(AccountingConfig(), str(tmp_path), catalog("base"))
    acct.measured.observe("gpu", fleet())
    acct.reconfigure(AccountingConfig(), catalog("base", "new-adapter"))
    assert acct.model_price("gpu", "new-adapter") == acct.model_price("gpu", "base") is not None
