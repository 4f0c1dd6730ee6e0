"""Third-party consent shared across replicas: two gateways on one real redis-server or one PostgreSQL database; an approval (or a
revocation) made through one replica's admin API is honoured by the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.consent.conftest import ADMIN, chat, consent_config, decide
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.redis_server import RedisServer
from tests.reliability.probes import wait_for

ROUTES = [{"name": "away", "match": {"tags": {"task": "away"}}, "targets": [{"model": "gpt-x"}]}]


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def shared(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The config sections the replicas share approvals through: a Redis of their own, or the database."""
    if request.param == "postgres":
        yield {"database": {"backend": "postgres", "dsn": request.getfixturevalue("shared_db")}}
        return
    srv = RedisServer().start()
    yield {"redis": {"url": srv.url}}
    srv.stop()


def test_an_approval_set_on_one_replica_is_honoured_on_the_other(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path: Path, shared: dict[str, Any]
) -> None:
    house, provider = upstreams

    def replica(name: str) -> RunningGateway:
        cfg = consent_config(house, provider, routes=ROUTES, **shared)
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
