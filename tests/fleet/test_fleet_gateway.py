"""Gateway replicas with the PostgreSQL ledger: every request in the database exactly once, through a
database outage and a replica's kill -9; reports equal a recount of raw rows; budgets re-seed a Redis that
came back empty from the database."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from tests.accounting.observe import metric_sum, scrape, spend, wait_for
from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess, RunningGateway
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

pytestmark = pytest.mark.postgres

PRICING = {"gpt-4o-mini": {"input_per_mtok": "1.00", "output_per_mtok": "2.00"}}  # $0.002 per request
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def priced() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="up", prompt_tokens=1000, completion_tokens=500).start()
    yield fake
    fake.stop()


def replica(upstream: FakeOpenAI, data_dir: Path, dsn: str, **extra: Any) -> dict[str, Any]:
    data_dir.mkdir(exist_ok=True)
    return basic_config(
        upstream.url,
        server={"data_dir": str(data_dir)},
        accounting={
            "pricing": PRICING,
            "ledger": {"backend": "postgres", "dsn": dsn},
            **extra.pop("acc", {}),
        },
        **extra,
    )


def ask(url: str) -> str:
    r = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MSG},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def raw(dsn: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn) as conn:
        n, distinct, nusd = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT request_id), COALESCE(SUM(cost_nusd), 0) FROM requests"
        ).fetchone()
    return int(n), int(distinct), int(nusd)


def ids_in(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT request_id FROM requests")}


def test_two_replicas_put_every_request_in_the_database_once_through_a_database_outage(
    priced: FakeOpenAI, postgres_server: PostgresServer, ledger_db: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(RunningGateway(replica(priced, tmp_path / "a", ledger_db)))
        b = stack.enter_context(RunningGateway(replica(priced, tmp_path / "b", ledger_db)))
        sent: list[str] = []
        slowest = 0.0
        with ThreadPoolExecutor(8) as pool:
            for phase in range(3):
                if phase == 1:
                    postgres_server.kill()  # mid-load: replicas keep serving, rows wait in their outboxes
                if phase == 2:
                    postgres_server.start()
                t = time.monotonic()
                sent += pool.map(ask, [gw.url for gw in (a, b) for _ in range(20)])
                slowest = max(slowest, time.monotonic() - t)
                if phase == 1:
                    time.sleep(1.5)  # the shippers retry against the dead database meanwhile
        assert len(sent) == 120 and slowest < 5  # the request path never waited on the database
        for gw in (a, b):  # /admin/spend waits until the replica's rows are shipped, then reads the rollups
            doc = wait_for(
                lambda gw=gw: (d := spend(gw.url).json())["total"]["requests"] == 120 and d, timeout=30
            )
            assert Decimal(doc["total"]["cost_usd"]) == Decimal("0.240")
        n, distinct, nusd = raw(ledger_db)
        assert (n, distinct, nusd) == (120, 120, 240_000_000)  # nothing lost, nothing twice
        assert ids_in(ledger_db) == set(sent)
        by_day = spend(a.url, group_by="day,key").json()["data"]
        assert sum(r["requests"] for r in by_day) == 120


def test_a_killed_replica_ships_its_flushed_rows_when_it_comes_back(
    priced: FakeOpenAI, postgres_server: PostgresServer, ledger_db: str, tmp_path: Path
) -> None:
    cfg = replica(priced, tmp_path / "a", ledger_db)
    gw = GatewayProcess(cfg, tmp_path)
    gw.start()
    again = GatewayProcess(cfg, tmp_path)  # the same replica (its data dir) after the crash
    try:
        postgres_server.kill()
        sent = [ask(gw.url) for _ in range(15)]
        # the kill -9 comes once the rows are in the outbox file (the documented loss bound is the flush
        # interval, 0.5 s: a fixed wait for it can fall short on a busy machine)
        wait_for(lambda: outbox_rows(tmp_path / "a") == 15, timeout=30)
        gw.signal(signal.SIGKILL)
        gw.wait()
        postgres_server.start()
        again.start()
        wait_for(lambda: raw(ledger_db)[0] == 15, timeout=30)
        assert ids_in(ledger_db) == set(sent)
        assert raw(ledger_db) == (15, 15, 30_000_000)
    finally:
        gw.stop()
        again.stop()


def test_budgets_reseed_an_emptied_redis_from_the_database_not_a_local_copy(
    priced: FakeOpenAI, ledger_db: str, tmp_path: Path
) -> None:
    own_redis = RedisServer().start()
    acc = {"acc": {"budgets": [{"scope": "team", "name": "search", "daily_usd": "0.007"}]}}
    try:
        cfg = {"redis": {"url": own_redis.url, "on_unavailable": "fail_open"}, **acc}
        with RunningGateway(replica(priced, tmp_path / "a", ledger_db, **cfg)) as a:
            for _ in range(3):  # $0.006 of $0.007
                ask(a.url)
            wait_for(lambda: spend(a.url).json()["total"]["requests"] == 3)
        own_redis.restart()  # no persistence: the shared counters are gone
        with RunningGateway(replica(priced, tmp_path / "b", ledger_db, **cfg)) as b:  # never saw that spend
            r = redis.Redis.from_url(own_redis.url)
            wait_for(
                lambda: (
                    sum(int(r.get(k) or 0) for k in r.keys("pointsman:spend:team:search:d:*")) == 6_000_000
                ),
                timeout=15,
            )
            ask(b.url)  # $0.006 < $0.007: one more
            wait_for(
                lambda: (
                    sum(int(r.get(k) or 0) for k in r.keys("pointsman:spend:team:search:d:*")) == 8_000_000
                )
            )
            res = httpx.post(
                b.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": MSG},
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
            )
            assert res.status_code == 429 and res.json()["error"]["code"] == "insufficient_quota"
            r.close()
    finally:
        own_redis.stop()


def outbox_rows(data_dir: Path) -> int:
    """Rows committed to a replica's local outbox (its SQLite ledger file), read beside the running gateway."""
    conn = sqlite3.connect(f"file:{data_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    finally:
        conn.close()


def ledger_status(url: str) -> dict[str, Any]:
    r = httpx.get(url + "/admin/ledger", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_the_outbox_and_its_bound_are_reported_while_the_database_is_down_and_after(
    priced: FakeOpenAI, postgres_server: PostgresServer, ledger_db: str, tmp_path: Path
) -> None:
    cfg = replica(
        priced,
        tmp_path / "a",
        ledger_db,
        acc={"ledger": {"backend": "postgres", "dsn": ledger_db, "outbox_max_rows": 4321}},
    )
    with RunningGateway(cfg) as gw:
        postgres_server.kill()
        try:
            for _ in range(5):
                ask(gw.url)
            # both: a shipping pass that found no rows yet makes no call, so the outbox may count 5 before a
            # pass has tried (and failed) to ship them
            down = wait_for(
                lambda: (d := ledger_status(gw.url))["outbox"]["rows"] == 5 and d["reachable"] is False and d,
                timeout=30,
            )
            assert down["outbox"]["max_rows"] == 4321
            assert down["outbox"]["full"] is False and down["ship_failures"] >= 1
            assert "@" not in down["database"] and down["database"].endswith(ledger_db.rsplit("/", 1)[1])
            m = scrape(gw.url)
            assert metric_sum(m, "pointsman_ledger_outbox_max_rows") == 4321
            assert metric_sum(m, "pointsman_ledger_outbox_rows") == 5
            assert metric_sum(m, "pointsman_ledger_ship_failures_total") >= 1
        finally:
            postgres_server.start()
        up = wait_for(lambda: (d := ledger_status(gw.url))["outbox"]["rows"] == 0 and d, timeout=30)
        assert up["reachable"] is True and up["shipped_rows"] == 5
        m = scrape(gw.url)
        assert metric_sum(m, "pointsman_ledger_shipped_rows_total") == 5
        assert metric_sum(m, "pointsman_ledger_outbox_rows") == 0


def test_requests_are_answered_promptly_while_the_database_is_frozen(
    priced: FakeOpenAI, postgres_server: PostgresServer, ledger_db: str, tmp_path: Path
) -> None:
    budget = {
        "budgets": [{"scope": "team", "name": "search", "daily_usd": "1000"}]
    }  # lookups read the database
    with RunningGateway(replica(priced, tmp_path / "a", ledger_db, acc=budget)) as gw:
        ask(gw.url)
        wait_for(lambda: raw(ledger_db)[0] == 1)  # the shipper holds a connection to the database
        postgres_server.pause()  # SIGSTOP: its connections stay open and nothing answers
        try:
            slowest = 0.0
            for _ in range(20):
                t = time.monotonic()
                ask(gw.url)
                slowest = max(slowest, time.monotonic() - t)
                time.sleep(0.05)
        finally:
            postgres_server.resume()
        assert slowest < 1.0
        wait_for(lambda: raw(ledger_db)[0] == 21, timeout=60)


def test_a_frozen_database_is_reported_unreachable_within_the_call_timeout(
    priced: FakeOpenAI, postgres_server: PostgresServer, ledger_db: str, tmp_path: Path
) -> None:
    ledger = {"backend": "postgres", "dsn": ledger_db, "call_timeout_s": 1}
    with RunningGateway(replica(priced, tmp_path / "a", ledger_db, acc={"ledger": ledger})) as gw:
        ask(gw.url)
        wait_for(lambda: spend(gw.url).json()["total"]["requests"] == 1)
        postgres_server.pause()
        try:
            for _ in range(3):
                ask(gw.url)
            frozen = wait_for(
                lambda: (d := ledger_status(gw.url))["reachable"] is False and d["outbox"]["rows"] == 3 and d,
                timeout=20,
            )
            assert "did not answer within 1 s" in frozen["last_error"]
            t = time.monotonic()
            r = spend(gw.url)
            assert r.status_code == 503 and r.json()["error"]["code"] == "ledger_unavailable"
            assert time.monotonic() - t < 5
        finally:
            postgres_server.resume()
        wait_for(lambda: ledger_status(gw.url)["outbox"]["rows"] == 0, timeout=30)
        assert raw(ledger_db)[0] == 4


def test_the_console_says_the_ledger_database_is_unreachable_instead_of_failing(
    priced: FakeOpenAI, postgres_server: PostgresServer, ledger_db: str, tmp_path: Path
) -> None:
    cfg = replica(priced, tmp_path / "a", ledger_db, console={"enabled": True})
    with RunningGateway(cfg) as gw, httpx.Client(base_url=gw.url, timeout=30) as console:
        assert console.post("/console/login", data={"key": ADMIN_KEY}).status_code == 303
        assert console.get("/console").status_code == 200
        postgres_server.kill()
        try:
            for page in ("/console", "/console/spend", "/console/spend.csv"):
                r = console.get(page)
                assert r.status_code == 503 and "ledger database" in r.text, page
        finally:
            postgres_server.start()
