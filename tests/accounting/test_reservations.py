"""Budget reservations over a running gateway: concurrent requests cannot pass a budget (two replicas sharing a
real Redis, and the embedded store), and what a request held is released however it ends."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.accounting.observe import ledger_rows, metric_sum, scrape, spend, wait_for
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess, RunningGateway

# $20 per request, reserved and spent alike: no input price, 1,000 output tokens at $20,000 per million, and
# the fake answers exactly max_tokens of them.
PRICING = {"gpt-4o-mini": {"input_per_mtok": "0", "output_per_mtok": "20000"}}
MAX_TOKENS = 1000
BUDGET = [{"scope": "key", "name": "app", "daily_usd": "100"}]
HEADERS = {"authorization": f"Bearer {CLIENT_KEY}"}


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": MAX_TOKENS,
        **extra,
    }


def config(upstream: FakeOpenAI, data_dir: Path, redis_url: str | None = None, **acc: Any) -> dict[str, Any]:
    upstream.prompt_tokens, upstream.completion_tokens = 20, MAX_TOKENS
    data_dir.mkdir(exist_ok=True)
    extra: dict[str, Any] = {"redis": {"url": redis_url}} if redis_url else {}
    return basic_config(
        upstream.url,
        server={"data_dir": str(data_dir)},
        accounting={"pricing": PRICING, "budgets": BUDGET, **acc},
        **extra,
    )


def post(url: str, doc: dict[str, Any] | None = None, timeout: float = 30) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=doc or body(), headers=HEADERS, timeout=timeout)


def at_once(urls: list[str], n: int, doc: dict[str, Any] | None = None) -> list[httpx.Response]:
    """``n`` requests released together, spread over ``urls`` in turn."""
    start = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        start.wait()
        return post(urls[i % len(urls)], doc)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def statuses(answers: list[httpx.Response]) -> dict[int, int]:
    out: dict[int, int] = {}
    for a in answers:
        out[a.status_code] = out.get(a.status_code, 0) + 1
    return out


def assert_budget_refusals(answers: list[httpx.Response]) -> None:
    for a in answers:
        if a.status_code == 429:
            err = a.json()["error"]
            assert err["code"] == "insufficient_quota", err
            assert "daily budget of key 'app'" in err["message"]


def ledger_cost(url: str, requests: int) -> Decimal:
    doc = wait_for(lambda: (d := spend(url).json())["total"]["requests"] == requests and d)
    return Decimal(doc["total"]["cost_usd"])


@pytest.fixture
def clean_redis(redis_server: str) -> str:
    with redis.Redis.from_url(redis_server) as r:
        r.flushdb()
    return redis_server


def reserved_in_redis(url: str) -> int:
    with redis.Redis.from_url(url) as r:
        return sum(int(r.get(k) or 0) for k in r.keys("pointsman:reserved:*"))


# -- the probe's scenario ---------------------------------------------------------------------------------------
@pytest.mark.redis
def test_twenty_concurrent_requests_over_two_replicas_admit_exactly_what_the_budget_covers(
    upstream: FakeOpenAI, tmp_path: Path, clean_redis: str
) -> None:
    upstream.delay = 1.0  # every admitted request is still running when the last one is admitted
    with ExitStack() as stack:
        a = stack.enter_context(RunningGateway(config(upstream, tmp_path / "a", clean_redis)))
        b = stack.enter_context(RunningGateway(config(upstream, tmp_path / "b", clean_redis)))
        answers = at_once([a.url, b.url], 20)
        assert statuses(answers) == {200: 5, 429: 15}  # $100 / $20: was 20 admitted (the probe saw 25 and 28)
        assert_budget_refusals(answers)
        assert len(upstream.requests) == 5
        for gw in (a, b):  # the shared ledger on either replica: every request once, $100 spent, never more
            assert ledger_cost(gw.url, 20) == Decimal(100)
        wait_for(lambda: reserved_in_redis(clean_redis) == 0)  # every reservation released
        assert post(a.url).status_code == post(b.url).status_code == 429  # spent: still refused


def test_twenty_concurrent_requests_on_one_gateway_admit_exactly_what_the_budget_covers(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.delay = 1.0
    with RunningGateway(config(upstream, tmp_path / "a")) as gw:
        answers = at_once([gw.url], 20)
        assert statuses(answers) == {200: 5, 429: 15}
        assert_budget_refusals(answers)
        assert len(upstream.requests) == 5
        assert ledger_cost(gw.url, 20) == Decimal(100)


def test_a_refusal_for_what_is_held_in_flight_says_so_and_asks_to_retry_soon(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.delay = 1.0
    with RunningGateway(config(upstream, tmp_path / "a")) as gw:
        answers = at_once([gw.url], 6)
        refused = [a for a in answers if a.status_code == 429]
        assert len(refused) == 1
        msg = refused[0].json()["error"]["message"]
        assert "cannot cover this request, which may cost up to $20 ($0 used, $100 held by requests" in msg
        assert refused[0].headers["retry-after"] == "1"  # in-flight requests may leave room within seconds


def test_a_request_naming_no_maximum_reserves_the_budgets_reserve_output_tokens(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.delay = 1.0
    budgets = [{**BUDGET[0], "reserve_output_tokens": MAX_TOKENS}]
    with RunningGateway(config(upstream, tmp_path / "a", budgets=budgets)) as gw:
        no_max = body()
        del no_max["max_tokens"]
        answers = at_once([gw.url], 10, no_max)
        assert statuses(answers) == {200: 5, 429: 5}
        assert ledger_cost(gw.url, 10) == Decimal(100)


def test_a_routes_default_max_tokens_bounds_the_reservation_of_a_request_naming_none(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.delay = 1.0
    cfg = config(upstream, tmp_path / "a")
    cfg["routes"] = [
        {
            "name": "capped",
            "match": {"model": "gpt-4o-mini"},
            "targets": [],
            "defaults": {"max_tokens": MAX_TOKENS},
        }
    ]
    with RunningGateway(cfg) as gw:
        no_max = body()
        del no_max["max_tokens"]
        answers = at_once([gw.url], 10, no_max)
        assert statuses(answers) == {200: 5, 429: 5}
        assert_budget_refusals(answers)
        assert {r.body["max_tokens"] for r in upstream.requests} == {MAX_TOKENS}
        assert ledger_cost(gw.url, 10) == Decimal(100)


def test_a_clients_max_completion_tokens_sizes_its_reservation_under_a_routes_default_max_tokens(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """The route's default output limit is not added beside the client's own (docs/routing.md), so it does not
    size the reservation either: $20 each, not the default's $100."""
    upstream.delay = 1.0
    cfg = config(upstream, tmp_path / "a")
    cfg["routes"] = [
        {
            "name": "capped",
            "match": {"model": "gpt-4o-mini"},
            "targets": [],
            "defaults": {"max_tokens": 5 * MAX_TOKENS},
        }
    ]
    with RunningGateway(cfg) as gw:
        own = body(max_completion_tokens=MAX_TOKENS)
        del own["max_tokens"]
        answers = at_once([gw.url], 10, own)
        assert statuses(answers) == {200: 5, 429: 5}
        assert all("max_tokens" not in r.body for r in upstream.requests)
        assert ledger_cost(gw.url, 10) == Decimal(100)


# -- every way a request ends releases what it held ----------------------------------------------------------------
def one_request_budget(upstream: FakeOpenAI, tmp_path: Path) -> dict[str, Any]:
    """A budget that covers one request's reservation at a time ($20) but, spent, nothing more."""
    return config(upstream, tmp_path / "a", budgets=[{"scope": "key", "name": "app", "daily_usd": "20"}])


def test_what_requests_in_flight_hold_is_a_gauge_per_budget(upstream: FakeOpenAI, tmp_path: Path) -> None:
    with RunningGateway(one_request_budget(upstream, tmp_path)) as gw:
        upstream.delay = 1.5
        held = "pointsman_budget_reserved_usd"
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(post, gw.url)
            wait_for(lambda: metric_sum(scrape(gw.url), held, scope="key", name="app", period="daily") == 20)
            assert answer.result().status_code == 200
        assert metric_sum(scrape(gw.url), held, scope="key", name="app", period="daily") == 0


def test_a_reservation_is_released_when_the_upstream_fails(upstream: FakeOpenAI, tmp_path: Path) -> None:
    with RunningGateway(one_request_budget(upstream, tmp_path)) as gw:
        upstream.behaviors["gpt-4o-mini"] = "fail_400"
        assert post(gw.url).status_code == 400  # nothing generated: $0
        upstream.behaviors.clear()
        assert post(gw.url).status_code == 200  # the failed request's $20 came back


def test_a_reservation_is_released_when_the_client_hangs_up_awaiting_its_answer(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    with RunningGateway(one_request_budget(upstream, tmp_path)) as gw:
        upstream.delay = 3.0
        with pytest.raises(httpx.ReadTimeout):
            post(gw.url, timeout=0.3)
        wait_for(lambda: upstream.abandoned == 1)
        rows = wait_for(lambda: ledger_rows(tmp_path / "a", "status = 499"))
        assert [r["error_type"] for r in rows] == ["client_disconnected"]
        upstream.delay = 0
        assert post(gw.url).status_code == 200  # its $20 came back


def test_a_reservation_is_released_when_the_client_hangs_up_mid_stream(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    with RunningGateway(one_request_budget(upstream, tmp_path)) as gw:
        upstream.chunks, upstream.chunk_delay = 20, 0.2
        with httpx.stream(
            "POST", gw.url + "/v1/chat/completions", json=body(stream=True), headers=HEADERS, timeout=10
        ) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the stream has started; then the client leaves
        rows = wait_for(lambda: ledger_rows(tmp_path / "a", "status = 499"))
        assert [r["outcome"] for r in rows] == ["cancelled"]
        upstream.chunk_delay = 0
        assert post(gw.url).status_code == 200  # its $20 came back


def test_the_unused_part_of_a_reservation_lets_later_requests_in(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.delay = 1.0
    with RunningGateway(config(upstream, tmp_path / "a")) as gw:
        upstream.completion_tokens = MAX_TOKENS // 4  # $20 reserved each, $5 spent
        assert statuses(at_once([gw.url], 6)) == {200: 5, 429: 1}  # $100 held while they run
        upstream.delay = 0
        # $25 spent: one at a time, each holds $20 and spends $5, admitted while spent + $20 fits in $100
        admitted = 0
        while post(gw.url).status_code == 200:
            admitted += 1
        assert admitted == 12  # spent $25, $30, ... $80 before each; at $85 the next $20 does not fit
        assert ledger_cost(gw.url, 6 + 13) == Decimal(85)


# -- a replica that dies holding reservations ------------------------------------------------------------------
@pytest.mark.redis
def test_reservations_of_a_replica_killed_with_requests_in_flight_expire_after_ttl_s(
    upstream: FakeOpenAI, tmp_path: Path, clean_redis: str
) -> None:
    ttl = 5.0
    acc = {"reservations": {"ttl_s": ttl}}
    upstream.delay = 60.0
    held = GatewayProcess(config(upstream, tmp_path / "a", clean_redis, **acc), tmp_path).start()
    with ThreadPoolExecutor(5) as pool, ExitStack() as stack:
        stack.callback(held.stop)
        other = stack.enter_context(RunningGateway(config(upstream, tmp_path / "b", clean_redis, **acc)))
        for _ in range(5):  # $100 held by the first replica
            pool.submit(post, held.url, body(), 120)
        wait_for(lambda: upstream.held == 5)
        time.sleep(ttl + 1)  # past ttl_s: the live replica renews what it holds
        assert post(other.url).status_code == 429
        held.signal(signal.SIGKILL)
        killed = time.monotonic()
        upstream.delay = 0
        wait_for(lambda: post(other.url).status_code == 200, timeout=2 * ttl, interval=0.2)
        assert time.monotonic() - killed <= ttl + 1.5  # freed within ttl_s (plus this loop's own steps)
