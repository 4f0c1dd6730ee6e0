"""Messages traffic is accounted like OpenAI traffic: every token class (cache reads and both cache-write
lifetimes) in the ledger, metrics and response headers, priced at the provider's price, streamed or not,
native or translated; budgets and rate limits refuse it in Anthropic's shape; counting tokens is free."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.accounting.observe import ledger_rows, metric_sum, scrape, wait_for
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.messages.conftest import NATIVE, TRANSLATED, Messages, ask, messages_config

MTOK = Decimal(1_000_000)
BUDGET_KEY = "sk-test-budget-0001"
# anthropic.com/pricing, Claude Haiku 4.5: $1 input, $1.25 5-minute cache write, $2 1-hour, $0.10 hit, $5 output
HAIKU = (Decimal("1"), Decimal("1.25"), Decimal("2"), Decimal("0.10"), Decimal("5"))


@pytest.fixture
def gw(claude: FakeAnthropic, upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    cfg = messages_config(
        claude,
        upstream,
        tmp_path,
        accounting={"budgets": [{"scope": "key", "name": "budget", "daily_usd": "0.00001"}]},
    )
    cfg["keys"].append({"name": "budget", "key": BUDGET_KEY, "team": "search"})
    with RunningGateway(cfg) as g:
        yield g


def row(gw: RunningGateway, rid: str) -> dict[str, Any]:
    return wait_for(lambda: ledger_rows(gw.config.server.data_dir, "request_id = ?", (rid,)))[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("stream", [False, True])
def test_native_cache_reads_and_writes_are_each_priced(
    api: Messages, gw: RunningGateway, claude: FakeAnthropic, stream: bool
) -> None:
    claude.input_tokens, claude.output_tokens = 3000, 2000
    claude.cache_write_5m_tokens, claude.cache_write_1h_tokens, claude.cache_read_input_tokens = (
        2000,
        1000,
        4000,
    )
    rid = f"cache-{stream}"
    if stream:
        api.stream(ask(NATIVE), **{"x-request-id": rid})
    else:
        r = api.post(ask(NATIVE), **{"x-request-id": rid})
        assert r.headers["x-pointsman-tokens-cache-write"] == "3000"
        assert r.headers["x-pointsman-tokens-cached-input"] == "4000"
    p_in, p_5m, p_1h, p_hit, p_out = HAIKU
    expected = (3000 * p_in + 2000 * p_5m + 1000 * p_1h + 4000 * p_hit + 2000 * p_out) / MTOK
    got = row(gw, rid)
    assert (got["endpoint"], got["input_tokens"], got["cached_input_tokens"]) == ("messages", 10000, 4000)
    assert (got["cache_write_tokens"], got["cache_write_1h_tokens"], got["output_tokens"]) == (
        3000,
        1000,
        2000,
    )
    assert Decimal(got["cost_usd"]) == expected == Decimal("0.0179")
    assert got["estimated"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_translated_usage_is_the_upstreams(
    api: Messages, gw: RunningGateway, upstream: FakeOpenAI, stream: bool
) -> None:
    upstream.prompt_tokens, upstream.completion_tokens, upstream.cached_tokens = 1000, 50, 400
    rid = f"tr-{stream}"
    if stream:
        api.stream(ask(TRANSLATED), **{"x-request-id": rid})
    else:
        doc = api.post(ask(TRANSLATED), **{"x-request-id": rid}).json()
        assert doc["usage"] == {"input_tokens": 600, "cache_read_input_tokens": 400, "output_tokens": 50}
    got = row(gw, rid)
    assert (got["backend"], got["input_tokens"], got["cached_input_tokens"], got["output_tokens"]) == (
        "up",
        1000,
        400,
        50,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_a_translated_answer_without_usage_is_counted_by_the_gateway(
    api: Messages, gw: RunningGateway, stream: bool
) -> None:
    rid = f"nousage-{stream}"
    if stream:
        api.stream(ask("fake-no_usage", "Count these words please"), **{"x-request-id": rid})
    else:
        r = api.post(ask("fake-no_usage", "Count these words please"), **{"x-request-id": rid})
        assert r.headers["x-pointsman-usage"] == "estimated"
    got = row(gw, rid)
    assert got["estimated"] == 1
    assert got["input_tokens"] > 0 and got["output_tokens"] > 0


def test_token_metrics_count_messages_traffic(
    api: Messages, gw: RunningGateway, claude: FakeAnthropic
) -> None:
    claude.cache_read_input_tokens = 5
    api.post(ask(NATIVE))
    samples = scrape(gw.url)
    assert (
        metric_sum(
            samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="cached_input", backend="anthropic"
        )
        == 5
    )
    assert metric_sum(samples, "pointsman_requests_total", outcome="ok", backend="anthropic") == 1


def test_a_budget_refusal_is_in_anthropics_shape(gw: RunningGateway) -> None:
    api = Messages(gw.url, BUDGET_KEY)
    try:
        r = api.post(ask(NATIVE))  # its max_tokens at Haiku's output price is more than the tiny budget
    finally:
        api.close()
    assert r.status_code == 429
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"
    assert "budget" in r.json()["error"]["message"]


def test_counting_tokens_is_not_accounted(api: Messages, gw: RunningGateway) -> None:
    r = api.post(
        {"model": NATIVE, "messages": [{"role": "user", "content": "a b"}]},
        "/v1/messages/count_tokens",
        **{"x-request-id": "count-1"},
    )
    assert r.json() == {"input_tokens": 5}
    api.post(ask(NATIVE), **{"x-request-id": "after-count"})
    row(gw, "after-count")
    assert ledger_rows(gw.config.server.data_dir, "request_id = ?", ("count-1",)) == []
