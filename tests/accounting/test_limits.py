"""Budgets (per key and team, daily and monthly) and per-key rate limits, in one gateway without Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.accounting.observe import ledger_rows, metric_sum, scrape, wait_for
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

MSG = [{"role": "user", "content": "hi"}]
OTHER_KEY = "sk-test-client-0002"
THIRD_KEY = "sk-test-client-0003"
# 1000 input + 500 output tokens at $1 / $2 per million = $0.002 per request
PRICING = {"gpt-4o-mini": {"input_per_mtok": "1.00", "output_per_mtok": "2.00"}}


def limits_config(upstream: FakeOpenAI, tmp_path: Path, **accounting: object) -> dict[str, object]:
    upstream.prompt_tokens, upstream.completion_tokens = 1000, 500
    cfg = basic_config(
        upstream.url, server={"data_dir": str(tmp_path)}, accounting={"pricing": PRICING, **accounting}
    )
    cfg["keys"] = [
        {"name": "app", "key": CLIENT_KEY, "team": "search"},
        {"name": "other", "key": OTHER_KEY, "team": "search"},
        {"name": "third", "key": THIRD_KEY, "team": "ads"},
    ]
    return cfg


@pytest.fixture
def gw(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    cfg = limits_config(
        upstream,
        tmp_path,
        budgets=[
            {"scope": "key", "name": "app", "daily_usd": "0.005", "soft_threshold": 0.5},
            {"scope": "team", "name": "ads", "monthly_usd": "0.003"},
        ],
        rate_limits=[
            {"key": "other", "requests_per_min": 3},
            {"key": "third", "tokens_per_min": 2000},
        ],
    )
    with RunningGateway(cfg) as g:
        yield g


class Asker:
    """Sends chat requests as one key; closes its connections when the test ends."""

    def __init__(self, gw: RunningGateway, key: str) -> None:
        self.client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
        OPEN.append(self.client)

    def ask(self) -> None:
        self.client.chat.completions.create(model="gpt-4o-mini", messages=MSG)


OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def client_for(gw: RunningGateway, key: str) -> Asker:
    return Asker(gw, key)


def test_key_daily_budget_refuses_with_insufficient_quota(
    gw: RunningGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = client_for(gw, CLIENT_KEY)
    with caplog.at_level(logging.WARNING, logger="pointsman.limits"):
        for _ in range(3):  # $0, $0.002, $0.004 spent before each: all under $0.005
            c.ask()
        with pytest.raises(openai.RateLimitError) as ei:
            c.ask()
    err = ei.value
    assert err.status_code == 429
    assert err.code == "insufficient_quota"
    assert isinstance(err.body, dict) and err.body["type"] == "insufficient_quota"
    assert "daily budget of key 'app'" in err.message and "$0.005" in err.message
    assert int(err.response.headers["retry-after"]) > 0
    assert any("soft threshold" in r.getMessage() and "'app'" in r.getMessage() for r in caplog.records)
    # another key of the same team is not affected (no team budget for "search")
    client_for(gw, OTHER_KEY).ask()
    samples = scrape(gw.url)
    assert (
        metric_sum(samples, "pointsman_budget_exceeded_total", scope="key", name="app", period="daily") == 1
    )
    assert metric_sum(samples, "pointsman_budget_remaining_usd", scope="key", name="app", period="daily") == 0
    assert metric_sum(samples, "pointsman_requests_total", outcome="budget_exceeded") == 1
    rows = wait_for(lambda: [r for r in ledger_rows(tmp_path) if r["outcome"] == "budget_exceeded"])
    assert rows[0]["key"] == "app" and rows[0]["status"] == 429 and rows[0]["cost_usd"] == "0"


def test_team_monthly_budget(gw: RunningGateway) -> None:
    c = client_for(gw, THIRD_KEY)
    c.ask()
    c.ask()  # $0.002 < $0.003
    with pytest.raises(openai.RateLimitError) as ei:
        c.ask()
    assert ei.value.code == "insufficient_quota"
    assert "monthly budget of team 'ads'" in ei.value.message
    assert (
        metric_sum(
            scrape(gw.url), "pointsman_budget_exceeded_total", scope="team", name="ads", period="monthly"
        )
        == 1
    )


def test_requests_per_minute(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    c = client_for(gw, OTHER_KEY)
    for _ in range(3):
        c.ask()
    sent = len(upstream.requests)
    with pytest.raises(openai.RateLimitError) as ei:
        c.ask()
    assert ei.value.code == "rate_limit_exceeded"
    assert "3 requests per minute" in ei.value.message
    assert len(upstream.requests) == sent  # refused before any upstream call
    samples = scrape(gw.url)
    assert metric_sum(samples, "pointsman_rate_limited_total", key="other", limit="rpm") == 1
    assert metric_sum(samples, "pointsman_requests_total", outcome="rate_limited") == 1


def test_tokens_per_minute(gw: RunningGateway) -> None:
    # "third" has a team budget too ($0.003/month): two requests fit, and tokens run out first.
    c = client_for(gw, THIRD_KEY)
    c.ask()  # 1500 tokens < 2000
    c.ask()  # window had 1500 < 2000 before it
    with pytest.raises(openai.RateLimitError) as ei:
        c.ask()
    # 3000 tokens >= 2000 in the window (checked before the spent team budget)
    assert ei.value.code in ("rate_limit_exceeded", "insufficient_quota")


def test_tokens_per_minute_alone(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = limits_config(upstream, tmp_path, rate_limits=[{"key": "*", "tokens_per_min": 2000}])
    with RunningGateway(cfg) as gw:
        c = client_for(gw, CLIENT_KEY)
        c.ask()
        c.ask()
        with pytest.raises(openai.RateLimitError) as ei:
            c.ask()
        assert ei.value.code == "rate_limit_exceeded" and "2000 tokens per minute" in ei.value.message
        # the default ("*") applies per key: another key has its own window
        client_for(gw, OTHER_KEY).ask()
        assert metric_sum(scrape(gw.url), "pointsman_rate_limited_total", key="app", limit="tpm") == 1


def test_budget_survives_restart_through_the_ledger(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = limits_config(upstream, tmp_path, budgets=[{"scope": "key", "name": "app", "daily_usd": "0.004"}])
    with RunningGateway(cfg) as gw:
        c = client_for(gw, CLIENT_KEY)
        c.ask()
        c.ask()
    with RunningGateway(cfg) as gw:  # a new process would read the same ledger file
        with pytest.raises(openai.RateLimitError) as ei:
            client_for(gw, CLIENT_KEY).ask()
        assert ei.value.code == "insufficient_quota"
