"""A price sheet's rules (``accounting.rates``): tiers fall back to standard prices, batch without its own price
is half, a long-context threshold reprices the whole request, one-hour cache writes default to the cache-write
price."""

from __future__ import annotations

from decimal import Decimal

from accounting.rates import MTOK, ModelPrice
from wire.usage import Usage


def sheet(**per_mtok: str) -> ModelPrice:
    return ModelPrice({k: Decimal(v) / MTOK for k, v in per_mtok.items()}, "table")


def test_a_tier_without_its_own_price_for_a_class_pays_the_standard_price() -> None:
    p = sheet(input_cost_per_token="2", output_cost_per_token="8", input_cost_per_token_flex="1")
    r = p.rates_for("flex")
    assert (r.input * MTOK, r.output * MTOK) == (1, 8)
    assert p.tiers() == ["standard", "flex"]


def test_batch_without_its_own_price_is_half_the_standard_price() -> None:
    p = sheet(input_cost_per_token="2", output_cost_per_token="8", output_cost_per_token_batches="3")
    r = p.rates_for("batch")
    assert (r.input * MTOK, r.output * MTOK) == (1, 3)


def test_a_prompt_above_a_threshold_prices_every_token_at_that_thresholds_rates() -> None:
    p = sheet(
        input_cost_per_token="1",
        output_cost_per_token="4",
        input_cost_per_token_above_200k_tokens="2",
        output_cost_per_token_above_200k_tokens="6",
    )
    assert p.context_thresholds() == (200_000,)
    assert p.cost(Usage(200_000, 1000)) == (200_000 * 1 + 1000 * 4) / MTOK
    assert p.cost(Usage(200_001, 1000)) == (200_001 * 2 + 1000 * 6) / MTOK
    assert p.rates_for("standard", 200_001).context_threshold == 200_000


def test_cache_write_prices_default_in_a_chain() -> None:
    p = sheet(input_cost_per_token="1", output_cost_per_token="4", cache_creation_input_token_cost="1.25")
    r = p.rates_for()
    assert (r.cache_write * MTOK, r.cache_write_1h * MTOK, r.cached_input * MTOK) == (
        Decimal("1.25"),
        Decimal("1.25"),
        1,
    )
    u = Usage(1000, 0, cache_write_tokens=600, cache_write_1h_tokens=200)
    assert p.cost(u) == (400 * 1 + 400 * Decimal("1.25") + 200 * Decimal("1.25")) / MTOK


def test_reasoning_audio_and_image_tokens_at_their_own_prices_where_listed() -> None:
    p = sheet(
        input_cost_per_token="1",
        output_cost_per_token="4",
        output_cost_per_reasoning_token="3",
        input_cost_per_audio_token="10",
    )
    u = Usage(100, 50, reasoning_tokens=20, audio_input_tokens=30, image_input_tokens=10)
    # image input has no price of its own: input price; output: 20 reasoning + 30 text
    assert p.cost(u) == (60 * 1 + 30 * 10 + 10 * 1 + 20 * 3 + 30 * 4) / MTOK
