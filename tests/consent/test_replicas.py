"""Third-party consent shared across replicas: two gateways on one real redis-server; an approval (or a
revocation) made through one replica's admin API is honoured by the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.consent.conftest import ADMIN, chat, consent_config, decide
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.redis_server import RedisServer
from tests.reliability.probes import wait_for

pytestmark = pytest.mark.redis

ROUTES = [{"name": "away", "match": {"tags": {"task": "away"}}, "targets": [{"model": "gpt-x"}]}]


@pytest.fixture
def redis_url() -> Iterator[str]:
    srv = RedisServer().start()
    yield srv.url
    srv.stop()


def test_an_approval_set_on_one_replica_is_honoured_on_the_other(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path: Path, redis_url: str
) -> None:
    house, provider = upstreams

    def replica(name: str) -> RunningGateway:
        cfg = consent_config(house, provider, routes=ROUTES, redis={"url": redis_url})
        cfg["server"] = {"data_dir": str(tmp_path / name)}
        return RunningGateway(cfg)

    with replica("a") as a, replica("b") as b:
        assert chat(b.url, "llama-a", "away").status_code == 403
        decide(a.url, "team", "growth", True, by="erin@example.com")
        wait_for(lambda: chat(b.url, "llama-a", "away").status_code == 200)
        r = chat(b.url, "llama-a", "away")
        assert r.headers["x-pointsman-backend"] == "provider"
        state = b.state.approvals.get("third_party", "team", "growth")
        assert state is not None and state.actor == "erin@example.com"

        decide(b.url, "team", "growth", False, by="frank@example.com")
        wait_for(lambda: chat(a.url, "llama-a", "away").status_code == 403)
        seen = len(provider.requests)
        assert chat(a.url, "llama-a", "away", stream=True).status_code == 403
        assert len(provider.requests) == seen
        history = httpx.get(f"{a.url}/admin/teams/growth/consent", headers=ADMIN, timeout=10).json()
        assert [(e["action"], e["actor"]) for e in history["history"]] == [
            ("approved", "erin@example.com"),
            ("revoked", "frank@example.com"),
        ]
