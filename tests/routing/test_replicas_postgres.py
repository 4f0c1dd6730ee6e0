"""Two gateway replicas sharing the routing policy through PostgreSQL (``database: {backend: postgres}``): a
change made through one is in force on the other, both show the same history, and a rollback applies on both.
Deadlines are generous (the change normally arrives by NOTIFY at once, at worst within sync_interval_s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_runner import GatewayProcess
from tests.routing.conftest import admin
from tests.routing.test_replicas import check_rule_from_one_replica_routes_the_others_requests, two_replicas

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(shared_db: str, tmp_path: Path) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    yield from two_replicas(tmp_path, database={"backend": "postgres", "dsn": shared_db})


def eventually(check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s"
        time.sleep(0.05)


def test_a_rule_created_on_one_replica_routes_the_others_requests(replicas: Any) -> None:
    a, b = replicas
    check_rule_from_one_replica_routes_the_others_requests(a, b, eventually)
    history = [admin(gw).get("/admin/routes/history").json() for gw in (a, b)]
    assert history[0] == history[1]  # one append-only history in the database


def test_a_rollback_on_one_replica_applies_on_both(replicas: Any, tmp_path: Path) -> None:
    a, b = replicas
    rule = {"name": "to-roll-back", "match": {"tags": {"task": "x"}}, "targets": [{"model": "m-secondary"}]}
    created = admin(a).post("/admin/routes", json=rule).json()["version"]
    eventually(lambda: admin(b).get("/admin/routes").json()["version"] >= created)
    assert admin(b).post("/admin/routes/rollback", json={"version": created - 1}).status_code == 200
    for gw in (a, b):
        eventually(
            lambda gw=gw: (
                "to-roll-back" not in [x["name"] for x in admin(gw).get("/admin/routes").json()["routes"]]
            )
        )
    assert (
        not (tmp_path / "a" / "policy.sqlite3").exists() and not (tmp_path / "b" / "policy.sqlite3").exists()
    )
