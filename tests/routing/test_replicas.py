"""Two gateway processes on one real redis-server: a change made through one is in force on the other within 1 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess
from tests.routing.conftest import admin, chat, sdk, two_backend_config

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def replicas(
    redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Replicas A and B sharing policy through Redis (started once for the module; tests use distinct names)."""
    with redis.Redis.from_url(redis_server) as r:
        for k in r.scan_iter("pointsman:policy:*"):
            r.delete(k)
    yield from two_replicas(tmp_path_factory.mktemp("replicas"), redis={"url": redis_server})


def two_replicas(tmp: Path, **shared: Any) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Replicas A and B of ``two_backend_config`` sharing ``shared`` (config sections), until closed."""
    up, up2 = FakeOpenAI(name="primary").start(), FakeOpenAI(name="secondary").start()
    cfg = {**two_backend_config(up, up2), **shared}
    a = GatewayProcess({**cfg, "server": {"data_dir": str(tmp / "a")}}, tmp)
    b = GatewayProcess({**cfg, "server": {"data_dir": str(tmp / "b")}}, tmp)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
        up.stop()
        up2.stop()


def wait_until(check: Any, within: float = 1.0) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < within, f"not within {within} s"
        time.sleep(0.02)
    return time.monotonic() - t0


def check_rule_from_one_replica_routes_the_others_requests(a: Any, b: Any, wait: Any) -> None:
    """A rule created through ``a`` routes ``b``'s requests once ``wait(check)`` returns (shared with the
    PostgreSQL replicas' tests)."""
    client_b = sdk(b)
    task = {"extra_headers": {"X-Pointsman-Task": "translate"}}
    assert chat(client_b, **task)["x-pointsman-route"] == "default"
    rule = {
        "name": "translations",
        "match": {"tags": {"task": "translate"}},
        "targets": [{"model": "m-secondary"}],
    }
    assert admin(a).post("/admin/routes", json=rule).status_code == 201
    wait(lambda: chat(client_b, **task)["x-pointsman-route"] == "translations")
    assert chat(client_b, **task)["x-pointsman-backend"] == "up2"


def test_rule_created_on_one_replica_routes_the_others_requests_within_a_second(replicas: Any) -> None:
    check_rule_from_one_replica_routes_the_others_requests(*replicas, wait_until)


def test_key_created_on_one_replica_works_on_the_other_within_a_second(replicas: Any) -> None:
    a, b = replicas
    r = admin(a).post("/admin/keys", json={"name": "shared"}).json()
    wait_until(lambda: admin(b).get("/admin/routes").json()["version"] >= r["version"])
    assert chat(sdk(b, r["key"]))["x-pointsman-backend"] == "up"


def test_rollback_on_one_replica_applies_on_both(replicas: Any) -> None:
    a, b = replicas
    rule = {"name": "to-roll-back", "match": {"tags": {"task": "x"}}, "targets": [{"model": "m-secondary"}]}
    before = admin(a).post("/admin/routes", json=rule).json()["version"] - 1
    assert admin(b).post("/admin/routes/rollback", json={"version": before}).status_code == 200
    wait_until(
        lambda: "to-roll-back" not in [x["name"] for x in admin(a).get("/admin/routes").json()["routes"]]
    )
