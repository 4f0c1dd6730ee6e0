"""A client key secret revoked through the admin API (the key deleted, or its secret rotated away) stays revoked
across restarts, whatever the config file says later: an edited file (an unrelated change to its policy) is
imported over the stored policy, but a key in it that still holds a revoked secret is not loaded, and the log
names it (never the secret) and says what to do. Real gateway processes restarted on one policy store (the
embedded SQLite file, Redis, PostgreSQL); requests through the official SDK."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.keys import hash_key
from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess
from tests.routing.conftest import TEAM_KEY, admin, chat, sdk, two_backend_config

RULE = {
    "name": "translations",
    "match": {"tags": {"task": "translate"}},
    "targets": [{"model": "m-secondary"}],
}


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config sections that put the policy store in SQLite under data_dir, in Redis, or in PostgreSQL."""
    if request.param == "redis":
        import redis

        url = request.getfixturevalue("redis_server")
        with redis.Redis.from_url(url) as r:
            for k in r.scan_iter("pointsman:policy:*"):
                r.delete(k)
        return {"redis": {"url": url}}
    if request.param == "postgres":
        return {"database": {"backend": "postgres", "dsn": request.getfixturevalue("shared_db")}}
    return {}


class Restarts:
    """Gateway processes started one after another on the same data_dir (and store), each stopped before the next."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: GatewayProcess | None = None

    def start(self, cfg: dict[str, Any]) -> GatewayProcess:
        self.stop()
        self.running = GatewayProcess(
            {**cfg, "server": {"data_dir": str(self.tmp / "data")}}, self.tmp
        ).start()
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


@pytest.fixture
def restarts(tmp_path: Path) -> Iterator[Restarts]:
    r = Restarts(tmp_path)
    yield r
    r.stop()


def config(upstream: FakeOpenAI, upstream2: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    """Keys ``app`` (CLIENT_KEY) and ``summarizer`` (TEAM_KEY)."""
    return two_backend_config(upstream, upstream2, **extra)


def edited(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same file with one unrelated change to its policy (a new rule): imported over the stored policy."""
    return {**cfg, "routes": [RULE]}


def refused(gw: GatewayProcess, secret: str) -> bool:
    try:
        chat(sdk(gw, secret))
    except openai.AuthenticationError:
        return True
    return False


def test_a_deleted_keys_secret_stays_revoked_after_an_edited_config_file_is_imported(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts, store: dict[str, Any]
) -> None:
    cfg = config(upstream, upstream2, **store)
    assert admin(restarts.start(cfg)).delete("/admin/keys/app").status_code == 200
    gw = restarts.start(edited(cfg))
    routes = admin(gw).get("/admin/routes").json()["routes"]
    assert [r["name"] for r in routes] == ["translations"]  # the edited file was imported
    assert refused(gw, CLIENT_KEY)


def test_a_rotated_away_secret_stays_revoked_after_an_edited_config_file_is_imported(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts, store: dict[str, Any]
) -> None:
    cfg = config(upstream, upstream2, **store)
    assert admin(restarts.start(cfg)).post("/admin/keys/summarizer/rotate").status_code == 200
    gw = restarts.start(edited(cfg))
    assert refused(gw, TEAM_KEY)
    chat(sdk(gw, CLIENT_KEY))  # the file's other key is in force


def test_a_file_key_holding_a_revoked_secret_is_named_in_a_warning_without_its_secret(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts
) -> None:
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg)).delete("/admin/keys/app")
    gw = restarts.start(edited(cfg))
    log = gw.log.read_text()
    lines = [ln for ln in log.splitlines() if "WARNING" in ln and "'app'" in ln and "revoked" in ln]
    assert len(lines) == 1, log[-3000:]
    assert "new secret in the config file" in lines[0]
    assert CLIENT_KEY not in log


def test_a_revoked_key_given_a_new_secret_in_the_config_file_authenticates_with_it(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts
) -> None:
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg)).delete("/admin/keys/app")
    fixed = edited(cfg)
    fixed["keys"] = [
        {**k, "key": "sk-test-client-new-0002"} if k["name"] == "app" else k for k in cfg["keys"]
    ]
    gw = restarts.start(fixed)
    assert chat(sdk(gw, "sk-test-client-new-0002"))["x-pointsman-backend"]
    assert refused(gw, CLIENT_KEY)


def test_a_key_not_loaded_for_its_revoked_secret_can_be_created_again_under_its_name(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts
) -> None:
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg)).delete("/admin/keys/app")
    gw = restarts.start(edited(cfg))
    r = admin(gw).post("/admin/keys", json={"name": "app", "team": "search"})
    assert r.status_code == 201, r.text
    chat(sdk(gw, r.json()["key"]))


def test_a_revoked_secret_stays_revoked_after_a_restart_with_the_file_changed_back(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts
) -> None:
    """Two imports in a row (edited, then the original again): the revocation is not a property of one version."""
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg)).delete("/admin/keys/app")
    restarts.start(edited(cfg))
    gw = restarts.start(cfg)
    assert refused(gw, CLIENT_KEY)


def test_an_admin_created_key_an_edited_config_file_drops_is_named_in_a_warning(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts
) -> None:
    cfg = config(upstream, upstream2)
    created = admin(restarts.start(cfg)).post("/admin/keys", json={"name": "made-live"}).json()["key"]
    gw = restarts.start(edited(cfg))
    assert refused(gw, created)  # an edited file wins: the key is not in it
    log = gw.log.read_text()
    lines = [ln for ln in log.splitlines() if "WARNING" in ln and "'made-live'" in ln]
    assert len(lines) == 1, log[-3000:]
    assert "create it again" in lines[0] and "add it to the config file" in lines[0]
    assert created not in log


def test_a_revoked_secret_is_kept_in_the_policy_store_only_as_its_digest(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts, tmp_path: Path
) -> None:
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg)).post("/admin/keys/summarizer/rotate")
    restarts.stop()
    data = tmp_path / "data"
    with contextlib.closing(sqlite3.connect(data / "policy.sqlite3")) as db:
        rows = db.execute("SELECT key_sha256, name FROM revoked_keys").fetchall()
    assert rows == [(hash_key(TEAM_KEY), "summarizer")]
    raw = b"".join(p.read_bytes() for p in data.glob("policy.sqlite3*"))
    assert TEAM_KEY.encode() not in raw
