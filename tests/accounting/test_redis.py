"""Shared limits, budgets and ledger across two gateway replicas on one real redis-server, and what happens
when Redis goes away (fail_open / fail_closed)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import redis

from tests.accounting.observe import metric_sum, scrape, spend, wait_for
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

MSG = [{"role": "user", "content": "hi"}]
PRICING = {"gpt-4o-mini": {"input_per_mtok": "1.00", "output_per_mtok": "2.00"}}  # $0.002 per request


def replica_config(
    upstream: FakeOpenAI, data_dir: Path, redis_url: str, policy: str = "fail_open", **accounting: object
) -> dict[str, object]:
    upstream.prompt_tokens, upstream.completion_tokens = 1000, 500
    data_dir.mkdir(exist_ok=True)
    return basic_config(
        upstream.url,
        server={"data_dir": str(data_dir)},
        redis={"url": redis_url, "on_unavailable": policy},
        accounting={"pricing": PRICING, **accounting},
    )


def ask(gw: RunningGateway) -> None:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)


@pytest.fixture
def clean_redis(redis_server: str) -> str:
    with redis.Redis.from_url(redis_server) as r:
        r.flushdb()
    return redis_server


def test_two_replicas_enforce_one_shared_budget(
    upstream: FakeOpenAI, tmp_path: Path, clean_redis: str
) -> None:
    acc = {"budgets": [{"scope": "team", "name": "search", "daily_usd": "0.005"}]}
    with ExitStack() as stack:
        r = stack.enter_context(redis.Redis.from_url(clean_redis))
        a = stack.enter_context(RunningGateway(replica_config(upstream, tmp_path / "a", clean_redis, **acc)))
        b = stack.enter_context(RunningGateway(replica_config(upstream, tmp_path / "b", clean_redis, **acc)))
        for i, gw in enumerate((a, b, a)):  # $0.000, $0.002, $0.004 spent before each: all allowed
            ask(gw)
            want = (i + 1) * 2_000_000  # nano-USD
            wait_for(
                lambda want=want: (
                    sum(int(r.get(k) or 0) for k in r.keys("pointsman:spend:team:search:d:*")) == want
                )
            )
        for gw in (b, a):  # $0.006 >= $0.005: both replicas refuse, whichever spent it
            with pytest.raises(openai.RateLimitError) as ei:
                ask(gw)
            assert ei.value.code == "insufficient_quota"
            assert "daily budget of team 'search'" in ei.value.message
        assert len(upstream.requests) == 3
        assert metric_sum(scrape(b.url), "pointsman_budget_exceeded_total", scope="team", name="search") == 1
        # the ledger is shared too: either replica's /admin/spend covers both
        for gw in (a, b):
            doc = wait_for(lambda gw=gw: (d := spend(gw.url).json())["total"]["requests"] == 5 and d)
            assert Decimal(doc["total"]["cost_usd"]) == Decimal("0.006")


def test_two_replicas_share_one_rate_limit(upstream: FakeOpenAI, tmp_path: Path, clean_redis: str) -> None:
    acc = {"rate_limits": [{"key": "app", "requests_per_min": 4}]}
    with ExitStack() as stack:
        a = stack.enter_context(RunningGateway(replica_config(upstream, tmp_path / "a", clean_redis, **acc)))
        b = stack.enter_context(RunningGateway(replica_config(upstream, tmp_path / "b", clean_redis, **acc)))
        for gw in (a, b, a, b):
            ask(gw)
        for gw in (a, b):
            with pytest.raises(openai.RateLimitError) as ei:
                ask(gw)
            assert ei.value.code == "rate_limit_exceeded"
        total = sum(
            metric_sum(scrape(gw.url), "pointsman_rate_limited_total", key="app", limit="rpm")
            for gw in (a, b)
        )
        assert total == 2


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


def test_redis_down_fail_open_keeps_serving_with_local_limits(
    upstream: FakeOpenAI, tmp_path: Path, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    acc = {"rate_limits": [{"key": "app", "requests_per_min": 5}]}
    with RunningGateway(replica_config(upstream, tmp_path / "a", own_redis.url, "fail_open", **acc)) as gw:
        ask(gw)
        assert metric_sum(scrape(gw.url), "pointsman_redis_up", component="limits") == 1
        with caplog.at_level(logging.WARNING, logger="pointsman.limits"):
            own_redis.stop()
            for _ in range(4):  # local window: 1 (seen before) + 4 = 5 allowed
                ask(gw)
            with pytest.raises(openai.RateLimitError) as ei:  # local limits still hold
                ask(gw)
            assert ei.value.code == "rate_limit_exceeded"
        samples = scrape(gw.url)
        assert metric_sum(samples, "pointsman_redis_up", component="limits") == 0
        assert (
            metric_sum(
                samples, "pointsman_shared_state_degraded_total", component="limits", policy="fail_open"
            )
            == 5
        )
        assert any(
            "redis unreachable for limits" in r.getMessage() and "fail_open" in r.getMessage()
            for r in caplog.records
        )
        own_redis.start()
        wait_for(lambda: metric_sum(scrape(gw.url), "pointsman_redis_up", component="limits") == 1)


def test_redis_down_fail_closed_refuses_then_recovers(
    upstream: FakeOpenAI, tmp_path: Path, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    acc = {"budgets": [{"scope": "key", "name": "app", "daily_usd": "10"}]}
    with RunningGateway(replica_config(upstream, tmp_path / "a", own_redis.url, "fail_closed", **acc)) as gw:
        ask(gw)
        sent = len(upstream.requests)
        with caplog.at_level(logging.WARNING, logger="pointsman.limits"):
            own_redis.stop()
            for _ in range(3):
                with pytest.raises(openai.RateLimitError) as ei:
                    ask(gw)
                assert ei.value.code == "shared_state_unavailable"
        assert len(upstream.requests) == sent
        samples = scrape(gw.url)
        assert metric_sum(samples, "pointsman_redis_up", component="limits") == 0
        assert (
            metric_sum(
                samples, "pointsman_shared_state_degraded_total", component="limits", policy="fail_closed"
            )
            == 3
        )
        assert any(
            "redis unreachable for limits" in r.getMessage() and "fail_closed" in r.getMessage()
            for r in caplog.records
        )
        own_redis.start()
        wait_for(lambda: metric_sum(scrape(gw.url), "pointsman_redis_up", component="limits") == 1)
        ask(gw)
        # keys without limits or budgets never need Redis
    cfg = replica_config(upstream, tmp_path / "b", own_redis.url, "fail_closed")
    own_redis.stop()
    with RunningGateway(cfg) as gw:
        ask(gw)
