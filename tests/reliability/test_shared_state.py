"""Shared-state faults: Redis stopped and restarted (or frozen) under load behind two replicas. Requests keep
flowing under ``redis.on_unavailable`` (fail_open: served with local limits; fail_closed: a fast 429, never a
5xx or a hang), limits and budgets are shared again across replicas when Redis returns, and no ledger record
is lost."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.accounting.observe import metric_sum, scrape
from tests.conftest import basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.redis_server import RedisServer
from tests.reliability.probes import ADMIN, CLIENT, MSG, flush_ledger, ledger_rows, openai_error, wait_for

pytestmark = pytest.mark.redis

PRICING = {"gpt-4o-mini": {"input_per_mtok": "1.00", "output_per_mtok": "2.00"}}  # 1000 in + 500 out: $0.002


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def priced_upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="up", prompt_tokens=1000, completion_tokens=500).start()
    yield fake
    fake.stop()


def replica(
    upstream: FakeOpenAI, data: Path, redis_url: str, policy: str, **accounting: Any
) -> dict[str, Any]:
    data.mkdir(exist_ok=True)
    return basic_config(
        upstream.url,
        server={"data_dir": str(data)},
        redis={"url": redis_url, "on_unavailable": policy},
        accounting={"pricing": PRICING, **accounting},
    )


def replicas(
    stack: ExitStack, upstream: FakeOpenAI, tmp: Path, redis_url: str, policy: str, **accounting: Any
) -> list[RunningGateway]:
    return [
        stack.enter_context(RunningGateway(replica(upstream, tmp / name, redis_url, policy, **accounting)))
        for name in ("a", "b")
    ]


def chat(gw: RunningGateway, rid: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        headers={**CLIENT, "x-request-id": rid},
        json={"model": "gpt-4o-mini", "messages": MSG},
        timeout=30,
    )


class Load:
    """Clients sending to both replicas in turn until stopped; every answer kept (status, seconds, body)."""

    def __init__(self, gws: list[RunningGateway], threads: int = 4) -> None:
        self.gws = gws
        self.answers: dict[str, tuple[int, float, bytes]] = {}
        self.started: dict[str, float] = {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            rid = f"load-{n}-{i}"
            gw = self.gws[(n + i) % len(self.gws)]
            i += 1
            t0 = time.monotonic()
            try:
                r = chat(gw, rid)
                self.answers[rid] = (r.status_code, time.monotonic() - t0, r.content)
            except httpx.HTTPError as exc:
                self.answers[rid] = (0, time.monotonic() - t0, repr(exc).encode())
            self.started[rid] = t0
            time.sleep(0.01)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def statuses(self) -> Counter[int]:
        return Counter(s for s, _, _ in self.answers.values())


def degraded(gws: list[RunningGateway], policy: str) -> float:
    return sum(
        metric_sum(scrape(g.url), "pointsman_shared_state_degraded_total", component="limits", policy=policy)
        for g in gws
    )


def redis_up(gw: RunningGateway) -> bool:
    return metric_sum(scrape(gw.url), "pointsman_redis_up", component="limits") == 1


def spend_total(gw: RunningGateway) -> dict[str, Any]:
    total: dict[str, Any] = httpx.get(gw.url + "/admin/spend", headers=ADMIN, timeout=30).json()["total"]
    return total


def test_fail_open_serves_every_request_while_redis_restarts_under_load(
    priced_upstream: FakeOpenAI, tmp_path: Path, own_redis: RedisServer
) -> None:
    acc = {
        "rate_limits": [{"key": "app", "requests_per_min": 100_000}],
        "budgets": [{"scope": "key", "name": "app", "daily_usd": "1000"}],
    }
    with ExitStack() as stack:
        gws = replicas(stack, priced_upstream, tmp_path, own_redis.url, "fail_open", **acc)
        with Load(gws) as load:
            time.sleep(1.0)
            stopped = time.time()
            own_redis.stop()
            time.sleep(2.0)
            own_redis.start()
            wait_for(lambda: all(redis_up(g) for g in gws), 15)
            time.sleep(1.0)
        statuses = load.statuses()
        assert set(statuses) == {200}, statuses
        assert degraded(gws, "fail_open") > 0, "the outage was not noticed under load"
        # No ledger record lost: every answered request is in some replica's ledger, none twice in one. Each
        # replica's copy of the shared ledger covers the other's rows too, except rows published in the instant
        # before Redis went away without its data (the stream went with it): those stay with their replica.
        for g in gws:
            flush_ledger(g.url)
        answered = set(load.answers)

        def files() -> list[dict[str, dict[str, Any]]]:
            return [
                {r["request_id"]: r for r in ledger_rows(tmp_path / g) if r["request_id"].startswith("load-")}
                for g in ("a", "b")
            ]

        for rows in (ledger_rows(tmp_path / g) for g in ("a", "b")):
            ids = [r["request_id"] for r in rows]
            assert len(ids) == len(set(ids)), "a request recorded twice in one ledger"
        assert set().union(*files()) == answered, answered - set().union(*files())
        wait_for(lambda: all(len(f) == len(answered) for f in files()) or time.time() > stopped + 20, 25)
        both = files()
        everything = {**both[0], **both[1]}
        for f in both:
            for rid in answered - set(f):
                assert stopped - 1.0 <= everything[rid]["ts"] <= stopped + 0.2, (
                    rid,
                    everything[rid]["ts"],
                    stopped,
                )


def test_fail_closed_answers_fast_429s_while_redis_is_down_then_serves_again(
    priced_upstream: FakeOpenAI, tmp_path: Path, own_redis: RedisServer
) -> None:
    acc = {"budgets": [{"scope": "key", "name": "app", "daily_usd": "1000"}]}
    with ExitStack() as stack:
        gws = replicas(stack, priced_upstream, tmp_path, own_redis.url, "fail_closed", **acc)
        with Load(gws) as load:
            time.sleep(1.0)
            stopped = time.monotonic()
            own_redis.stop()
            time.sleep(2.0)
            own_redis.start()
            wait_for(lambda: all(redis_up(g) for g in gws), 15)
            back = time.monotonic()
            time.sleep(1.0)
        statuses = load.statuses()
        assert set(statuses) <= {200, 429}, statuses
        refused = [(rid, t, body) for rid, (s, t, body) in load.answers.items() if s == 429]
        assert refused, "nothing was refused while Redis was down"
        for rid, t, body in refused:
            assert load.started[rid] + t >= stopped and load.started[rid] <= back, (
                "refused outside the outage"
            )
            assert t < 3.0, f"a refusal took {t:.1f} s"
            err = openai_error(
                httpx.Response(429, content=body, headers={"content-type": "application/json"})
            )
            assert err["code"] == "shared_state_unavailable"
        after = [s for rid, (s, _, _) in load.answers.items() if load.started[rid] > back]
        assert after and set(after) == {200}
        assert degraded(gws, "fail_closed") == len(refused)


def test_rate_limit_is_shared_again_across_replicas_after_redis_restarts(
    priced_upstream: FakeOpenAI, tmp_path: Path, own_redis: RedisServer
) -> None:
    acc = {"rate_limits": [{"key": "app", "requests_per_min": 6}]}
    with ExitStack() as stack:
        a, b = replicas(stack, priced_upstream, tmp_path, own_redis.url, "fail_open", **acc)
        own_redis.stop()
        assert chat(a, "down-a").status_code == 200  # local windows while it is down
        own_redis.start()
        wait_for(lambda: redis_up(a) and redis_up(b), 15)
        statuses = [chat(gw, f"back-{i}").status_code for i, gw in enumerate([a, b, a, b, a, b, a, b])]
        # one shared window of 6 again: 6 answered across both replicas, then both refuse
        assert statuses.count(200) == 6, statuses
        assert statuses[-2:] == [429, 429], statuses


def test_budget_spent_during_an_outage_counts_on_every_replica_once_redis_is_back(
    priced_upstream: FakeOpenAI, tmp_path: Path, own_redis: RedisServer
) -> None:
    acc = {"budgets": [{"scope": "key", "name": "app", "daily_usd": "0.009"}]}  # refused once $0.009 is spent
    with ExitStack() as stack:
        a, b = replicas(stack, priced_upstream, tmp_path, own_redis.url, "fail_open", **acc)
        assert chat(a, "before-0").status_code == 200
        assert chat(b, "before-1").status_code == 200
        assert own_redis.proc is not None
        os.kill(own_redis.proc.pid, signal.SIGSTOP)  # frozen: connections hang, timeouts decide
        try:
            assert chat(a, "during-0").status_code == 200
            assert chat(b, "during-1").status_code == 200
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        wait_for(lambda: redis_up(a) and redis_up(b), 15)
        time.sleep(1.0)  # the spend made during the outage is pushed when Redis is back
        # $0.008 spent in all, $0.009 budget: neither replica may let more than one more through
        statuses = [chat(gw, f"after-{i}").status_code for i, gw in enumerate([a, b, a, b])]
        assert statuses.count(200) == 1, statuses
        for gw in (a, b):
            total = wait_for(lambda gw=gw: (t := spend_total(gw))["requests"] == 8 and t, 20)  # refusals too
            assert Decimal(total["cost_usd"]) == Decimal("0.010")


def test_budget_survives_redis_restarting_empty(
    priced_upstream: FakeOpenAI, tmp_path: Path, own_redis: RedisServer
) -> None:
    """A Redis without persistence comes back empty: the replicas raise the shared counters back to what their
    ledgers know was spent, instead of letting the budget be spent again."""
    acc = {"budgets": [{"scope": "key", "name": "app", "daily_usd": "0.009"}]}  # refused once $0.009 is spent
    with ExitStack() as stack:
        a, b = replicas(stack, priced_upstream, tmp_path, own_redis.url, "fail_open", **acc)
        for i, gw in enumerate((a, b, a)):
            assert chat(gw, f"before-{i}").status_code == 200
        wait_for(
            lambda: spend_total(a)["requests"] == 3 and spend_total(b)["requests"] == 3, 15
        )  # both ledgers
        time.sleep(1.5)  # ... and both budget views (refreshed from the ledger every second) hold all three
        own_redis.restart()  # --save "": every counter is gone
        wait_for(lambda: redis_up(a) and redis_up(b), 15)
        time.sleep(1.0)
        statuses = [chat(gw, f"after-{i}").status_code for i, gw in enumerate([b, a, b, a])]
        # $0.006 spent before the restart still counts: two more ($0.008, $0.010), not four
        assert statuses.count(200) == 2, statuses
