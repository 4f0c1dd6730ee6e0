"""Every token class and tier is priced at the provider's published price, through a running gateway: Anthropic
prompt-cache writes (five-minute and one-hour) through litellm, OpenAI cached and reasoning tokens, a long-context
prompt, and each service tier the response reports. Expected figures are the providers' price lists (USD per
million tokens), not the table, so a wrong table entry would show too."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.accounting.observe import ledger_rows, metric_sum, scrape, wait_for
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess, RunningGateway

MTOK = Decimal(1_000_000)
MSG = [{"role": "user", "content": "Summarise the report."}]


def usd(*terms: tuple[int, str]) -> Decimal:
    """Sum of tokens x USD per million tokens."""
    return sum((n * Decimal(p) for n, p in terms), Decimal(0)) / MTOK


# -- Anthropic through litellm ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def claude_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, FakeAnthropic]]:
    fake = FakeAnthropic().start()
    cfg = fake.gateway_config(CLIENT_KEY)
    gw = GatewayProcess(cfg, tmp_path_factory.mktemp("claude")).start()
    try:
        yield gw, fake
    finally:
        gw.stop()
        fake.stop()


def claude_cost(gw: GatewayProcess) -> tuple[Decimal, dict[str, str]]:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(model="claude-haiku-4-5", messages=MSG)
    return Decimal(raw.headers["x-pointsman-cost-usd"]), dict(raw.headers)


def test_anthropic_cache_writes_cost_the_cache_write_price(
    claude_gw: tuple[GatewayProcess, FakeAnthropic],
) -> None:
    gw, fake = claude_gw
    # the example: 3k plain + 3k cache-write + 4k cache-read + 2k output tokens on claude-haiku-4-5
    fake.input_tokens, fake.output_tokens = 3000, 2000
    fake.cache_write_5m_tokens, fake.cache_write_1h_tokens, fake.cache_read_input_tokens = 3000, 0, 4000
    cost, headers = claude_cost(gw)
    # anthropic.com/pricing, Claude Haiku 4.5: $1 input, $1.25 5-minute cache write, $0.10 cache hit, $5 output
    assert cost == usd((3000, "1"), (3000, "1.25"), (4000, "0.10"), (2000, "5")) == Decimal("0.01715")
    assert (
        headers["x-pointsman-tokens-input"] == "10000" and headers["x-pointsman-tokens-cache-write"] == "3000"
    )


def test_anthropic_one_hour_cache_writes_cost_twice_the_input_price(
    claude_gw: tuple[GatewayProcess, FakeAnthropic],
) -> None:
    gw, fake = claude_gw
    fake.input_tokens, fake.output_tokens = 3000, 2000
    fake.cache_write_5m_tokens, fake.cache_write_1h_tokens, fake.cache_read_input_tokens = 2000, 1000, 4000
    cost, _ = claude_cost(gw)
    # anthropic.com/pricing: a 1-hour cache write costs 2x the base input price ($2 for Haiku 4.5)
    assert (
        cost
        == usd((3000, "1"), (2000, "1.25"), (1000, "2"), (4000, "0.10"), (2000, "5"))
        == Decimal("0.0179")
    )


# -- OpenAI -------------------------------------------------------------------------------------------------------
@pytest.fixture
def gw(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    cfg: dict[str, Any] = basic_config(upstream.url, server={"data_dir": str(tmp_path)})
    cfg["models"].update(
        {
            "gpt-5": {"backend": "up"},
            "gpt-5.4": {"backend": "up"},
            "qwen": {"backend": "up", "upstream_model": "dashscope/qwen-turbo"},
        }
    )
    # the table prices qwen-turbo's reasoning tokens apart from its output ($0.50 against $0.20 per million)
    cfg["accounting"] = {"pricing": {"qwen": {"input_per_mtok": "0.5", "output_per_mtok": "1"}}}
    with RunningGateway(cfg) as g:
        yield g


def openai_cost(gw: RunningGateway, model: str, rid: str, **kw: Any) -> Decimal:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(
            model=model, messages=MSG, extra_headers={"x-request-id": rid}, **kw
        )
    return Decimal(raw.headers["x-pointsman-cost-usd"])


def test_openai_cached_and_reasoning_tokens(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    upstream.prompt_tokens, upstream.cached_tokens = 10000, 4000
    upstream.completion_tokens, upstream.reasoning_tokens = 2000, 1500
    # platform.openai.com/docs/pricing, gpt-5 (Standard): $1.25 input, $0.125 cached input, $10 output
    # (reasoning tokens are billed as output tokens)
    assert (
        openai_cost(gw, "gpt-5", "oa-1")
        == usd((6000, "1.25"), (4000, "0.125"), (2000, "10"))
        == Decimal("0.028")
    )
    row = wait_for(lambda: ledger_rows(gw.config.server.data_dir, "request_id = ?", ("oa-1",)))[0]
    assert (row["cached_input_tokens"], row["reasoning_tokens"], row["service_tier"]) == (
        4000,
        1500,
        "standard",
    )
    samples = scrape(gw.url)
    assert metric_sum(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="reasoning") == 1500


def test_an_output_price_override_prices_reasoning_tokens_too(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    upstream.prompt_tokens, upstream.cached_tokens = 10000, 0
    upstream.completion_tokens, upstream.reasoning_tokens = 2000, 1500
    assert openai_cost(gw, "qwen", "qwen-1") == usd((10000, "0.5"), (2000, "1")) == Decimal("0.007")


@pytest.mark.parametrize(
    ("tier", "prices", "expected"),
    [
        # platform.openai.com/docs/pricing, gpt-5: Flex $0.625 / $0.0625 / $5, Priority $2.50 / $0.25 / $20
        ("flex", ("0.625", "0.0625", "5"), "0.014"),
        ("priority", ("2.50", "0.25", "20"), "0.056"),
    ],
)
def test_openai_service_tier_reported_by_the_response_sets_the_price(
    gw: RunningGateway, upstream: FakeOpenAI, tier: str, prices: tuple[str, str, str], expected: str
) -> None:
    upstream.prompt_tokens, upstream.cached_tokens, upstream.completion_tokens = 10000, 4000, 2000
    cost = openai_cost(gw, "gpt-5", f"tier-{tier}", service_tier=tier)
    assert cost == usd((6000, prices[0]), (4000, prices[1]), (2000, prices[2])) == Decimal(expected)
    row = wait_for(lambda: ledger_rows(gw.config.server.data_dir, "request_id = ?", (f"tier-{tier}",)))[0]
    assert row["service_tier"] == tier


def test_openai_long_context_prompt_prices_every_token_at_the_long_context_rate(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    upstream.prompt_tokens, upstream.cached_tokens, upstream.completion_tokens = 300_000, 100_000, 2000
    # platform.openai.com/docs/pricing, gpt-5.4: prompts above 272K tokens cost 2x input ($5, cached $0.50)
    # and 1.5x output ($22.50) for the whole request
    cost = openai_cost(gw, "gpt-5.4", "long-1")
    assert cost == usd((200_000, "5"), (100_000, "0.50"), (2000, "22.50")) == Decimal("1.095")
    row = wait_for(lambda: ledger_rows(gw.config.server.data_dir, "request_id = ?", ("long-1",)))[0]
    assert row["context_threshold"] == 272_000
    # the same prompt in the flex tier: flex long-context prices ($2.50 / $0.25 / $11.25)
    flex = openai_cost(gw, "gpt-5.4", "long-flex", service_tier="flex")
    assert flex == usd((200_000, "2.50"), (100_000, "0.25"), (2000, "11.25"))


def test_openai_a_prompt_at_the_threshold_keeps_the_standard_rate(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    upstream.prompt_tokens, upstream.cached_tokens, upstream.completion_tokens = 272_000, 0, 1000
    # gpt-5.4 standard: $2.50 input, $15 output; "above 272K" starts at 272,001 prompt tokens
    assert openai_cost(gw, "gpt-5.4", "edge-1") == usd((272_000, "2.50"), (1000, "15"))
