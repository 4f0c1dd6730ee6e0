from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

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
