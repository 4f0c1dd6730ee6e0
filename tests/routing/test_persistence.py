"""Policy changes survive a restart (embedded SQLite under server.data_dir); an edited config file wins."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess
from tests.routing.conftest import admin, chat, sdk, two_backend_config

RULE = {
    "name": "translations",
    "match": {"tags": {"task": "translate"}},
    "targets": [{"model": "m-secondary"}],
}


def config(upstream: FakeOpenAI, upstream2: FakeOpenAI, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    cfg = two_backend_config(upstream, upstream2, **extra)
    cfg["server"] = {"data_dir": str(tmp_path / "data")}
    return cfg


def test_rules_created_through_the_admin_api_survive_a_restart(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, tmp_path: Path
) -> None:
    cfg = config(upstream, upstream2, tmp_path)
    first = GatewayProcess(cfg, tmp_path).start()
    try:
        assert admin(first).post("/admin/routes", json=RULE).status_code == 201
        secret = admin(first).post("/admin/keys", json={"name": "made-live"}).json()["key"]
    finally:
        first.stop()
    second = GatewayProcess(cfg, tmp_path).start()
    try:
        assert [r["name"] for r in admin(second).get("/admin/routes").json()["routes"]] == ["translations"]
        headers = chat(sdk(second, secret), extra_headers={"X-Pointsman-Task": "translate"})
        assert headers["x-pointsman-route"] == "translations"
        assert [h["version"] for h in admin(second).get("/admin/routes/history").json()["history"]] == [
            3,
            2,
            1,
        ]
    finally:
        second.stop()


def test_an_edited_config_file_is_imported_as_a_new_version_on_restart(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, tmp_path: Path, gateway_factory: Any
) -> None:
    cfg = config(upstream, upstream2, tmp_path)
    first = gateway_factory(cfg)
    admin(first).post("/admin/routes", json=RULE)
    first.stop()
    second = gateway_factory({**cfg, "routes": [{**RULE, "name": "from-file"}]})
    d = admin(second).get("/admin/routes/history").json()
    assert [(h["version"], h["source"]) for h in d["history"]] == [(3, "config"), (2, "admin"), (1, "config")]
    assert (
        chat(sdk(second), extra_headers={"X-Pointsman-Task": "translate"})["x-pointsman-route"] == "from-file"
    )


def test_an_unchanged_config_file_keeps_admin_changes_on_restart(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, tmp_path: Path, gateway_factory: Any
) -> None:
    cfg = config(upstream, upstream2, tmp_path)
    first = gateway_factory(cfg)
    admin(first).post("/admin/routes", json=RULE)
    first.stop()
    second = gateway_factory(cfg)
    assert admin(second).get("/admin/routes").json()["version"] == 2


def test_stored_policy_holds_no_client_or_upstream_secrets(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, tmp_path: Path, gateway_factory: Any
) -> None:
    cfg = config(upstream, upstream2, tmp_path)
    gw = gateway_factory(cfg)
    secret = admin(gw).post("/admin/keys", json={"name": "k2"}).json()["key"]
    gw.stop()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("policy.sqlite3*"))
    assert b"k2" in raw
    for s in (secret, "sk-upstream-secret", "sk-test-client-0001", cfg["admin_key"]):
        assert s.encode() not in raw


def test_without_its_policy_store_the_gateway_serves_the_file_and_refuses_changes(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, tmp_path: Path, gateway_factory: Any
) -> None:
    cfg = config(upstream, upstream2, tmp_path, routes=[RULE])
    cfg["redis"] = {"url": "redis://127.0.0.1:9/0"}  # nothing listens there
    gw = gateway_factory(cfg)
    assert (
        chat(sdk(gw), extra_headers={"X-Pointsman-Task": "translate"})["x-pointsman-route"] == "translations"
    )
    r = admin(gw).post("/admin/routes", json={**RULE, "name": "another"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "policy_store_unavailable"


def test_gateways_sharing_a_data_dir_pick_up_each_others_changes_by_version_check(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, tmp_path: Path, gateway_factory: Any
) -> None:
    """As the workers of one host do (``--workers N``): no pub/sub, the head-version check alone."""
    cfg = config(upstream, upstream2, tmp_path)
    a, b = gateway_factory(cfg), gateway_factory(cfg)
    client_b = sdk(b)
    assert admin(a).post("/admin/routes", json=RULE).status_code == 201
    t0 = time.monotonic()
    while (
        chat(client_b, extra_headers={"X-Pointsman-Task": "translate"})["x-pointsman-route"] != "translations"
    ):
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.02)
