from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

CLIENT_KEY = "sk-test-client-0001"
ADMIN_KEY = "sk-test-admin-0001"


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="primary").start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream2() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="secondary").start()
    yield fake
    fake.stop()


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


def basic_config(upstream_url: str, **extra: object) -> dict[str, object]:
    cfg: dict[str, object] = {
        "admin_key": ADMIN_KEY,
        "backends": {"up": {"type": "openai", "base_url": upstream_url, "api_key": "sk-upstream-secret"}},
        "models": {
            "gpt-4o-mini": {"backend": "up"},
            "alias": {"backend": "up", "upstream_model": "gpt-4o-mini"},
            "fake-*": {"backend": "up"},
        },
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real redis-server started by the suite on a free loopback port; yields its URL."""
    from tests.redis_server import RedisServer

    srv = RedisServer().start()
    yield srv.url
    srv.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (tests/postgres_server.py), one per session; tests use a database each."""
    from tests.postgres_server import PostgresServer

    srv = PostgresServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def empty_db(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database (no schema)."""
    import uuid

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def ledger_db(empty_db: str) -> str:
    """The DSN of a new database with the ledger's current schema."""
    import psycopg

    from accounting import pg_schema

    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            "SET synchronous_commit = on"
        )  # the server's default is off: a kill would lose the schema
        pg_schema.migrate(conn)
    return empty_db


@pytest.fixture
def shared_db(ledger_db: str) -> str:
    """The DSN of a new database with every schema current (ledger, policy, shadow, approvals)."""
    import psycopg

    from accounting import pg_domain
    from gateway.cli.db import domains

    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        for d in domains():
            pg_domain.migrate(conn, d)
    return ledger_db


# -- a failing test's report carries the logs of the gateways it ran against ---------------------------------------
_GATEWAYS_BEFORE = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    runner = sys.modules.get("tests.gateway_runner")
    item.stash[_GATEWAYS_BEFORE] = len(runner.STARTED) if runner is not None else 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    runner = sys.modules.get("tests.gateway_runner")
    if report.failed and runner is not None:
        for title, text in runner.logs_for_report(item.stash.get(_GATEWAYS_BEFORE, 0)):
            report.sections.append((title, text))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    runner = sys.modules.get("tests.gateway_runner")
    for hung in runner.HUNG_STOPS if runner is not None else ():
        terminalreporter.write_line(f"an in-process gateway did not stop within 15 s ({hung})", yellow=True)
