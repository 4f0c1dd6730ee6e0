"""A client key secret revoked through the admin API (the key deleted, or its secret rotated away) stays revoked
across restarts, whatever the config file says later: an edited file (an unrelated change to its policy) is
imported over the stored policy, but a key in it that still holds a revoked secret is not loaded, and the log
names it (never the secret) and says what to do. It stays revoked when the policy store cannot be reached at
startup too: the gateway keeps a copy of the revoked digests in its data_dir and loads the config file's policy
without those keys. Real gateway processes restarted on one policy store (the embedded SQLite file, Redis,
PostgreSQL); requests through the official SDK."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
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
    return store_sections(request.param, request)


def store_sections(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config sections of an ``embedded``, ``redis`` (emptied of policy) or ``postgres`` policy store."""
    if kind == "redis":
        import redis

        url = request.getfixturevalue("redis_server")
        with redis.Redis.from_url(url) as r:
            for k in r.scan_iter("pointsman:policy:*"):
                r.delete(k)
        return {"redis": {"url": url}}
    if kind == "postgres":
        return {"database": {"backend": "postgres", "dsn": request.getfixturevalue("shared_db")}}
    return {}


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def shared_store(request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config sections of a policy store that can go away (Redis, PostgreSQL): as it is, and the same store
    at a port nothing listens on (unreachable)."""
    up = store_sections(request.param, request)
    if request.param == "redis":
        return up, {"redis": {"url": "redis://127.0.0.1:9/0"}}
    dsn = re.sub(r"@127\.0\.0\.1:\d+/", "@127.0.0.1:9/", up["database"]["dsn"])
    return up, {"database": {"backend": "postgres", "dsn": dsn}}


class Restarts:
    """Gateway processes started one after another on the same data_dir (and store), each stopped before the next."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: GatewayProcess | None = None

    def start(self, cfg: dict[str, Any], env: dict[str, str] | None = None) -> GatewayProcess:
        self.stop()
        self.running = GatewayProcess(
            {**cfg, "server": {"data_dir": str(self.tmp / "data")}}, self.tmp, env=env
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


def warnings_naming(gw: GatewayProcess, name: str) -> list[str]:
    """The log's warnings that a key holding a revoked secret is not loaded, for key ``name``."""
    log = gw.log.read_text()
    return [ln for ln in log.splitlines() if "WARNING" in ln and f"{name!r}" in ln and "revoked" in ln]


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


def test_a_revoked_secret_is_kept_in_the_local_copy_only_as_its_digest(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts, tmp_path: Path
) -> None:
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg)).post("/admin/keys/summarizer/rotate")
    restarts.stop()
    raw = (tmp_path / "data" / "revoked_keys.json").read_text()
    assert hash_key(TEAM_KEY) in raw and "summarizer" in raw
    assert TEAM_KEY not in raw


# -- the policy store unreachable at startup: the local copy of the revocations ---------------------------------


def test_a_deleted_keys_secret_stays_revoked_when_the_policy_store_is_unreachable_at_startup(
    upstream: FakeOpenAI,
    upstream2: FakeOpenAI,
    restarts: Restarts,
    shared_store: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    up, down = shared_store
    assert (
        admin(restarts.start(config(upstream, upstream2, **up))).delete("/admin/keys/app").status_code == 200
    )
    gw = restarts.start(config(upstream, upstream2, **down))  # the file still holds app's secret
    assert refused(gw, CLIENT_KEY)
    chat(sdk(gw, TEAM_KEY))  # the file's other key is in force


def test_a_rotated_away_secret_stays_revoked_when_the_policy_store_is_unreachable_at_startup(
    upstream: FakeOpenAI,
    upstream2: FakeOpenAI,
    restarts: Restarts,
    shared_store: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    up, down = shared_store
    gw = restarts.start(config(upstream, upstream2, **up))
    assert admin(gw).post("/admin/keys/summarizer/rotate").status_code == 200
    gw = restarts.start(config(upstream, upstream2, **down))
    assert refused(gw, TEAM_KEY)
    chat(sdk(gw, CLIENT_KEY))


def test_a_key_left_out_for_the_local_copy_of_the_revocations_is_named_in_a_warning_without_its_secret(
    upstream: FakeOpenAI,
    upstream2: FakeOpenAI,
    restarts: Restarts,
    shared_store: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    up, down = shared_store
    admin(restarts.start(config(upstream, upstream2, **up))).delete("/admin/keys/app")
    gw = restarts.start(config(upstream, upstream2, **down))
    lines = warnings_naming(gw, "app")
    assert len(lines) == 1, gw.log.read_text()[-3000:]
    assert "policy version 2" in lines[0] and "new secret in the config file" in lines[0]
    assert CLIENT_KEY not in gw.log.read_text()


@pytest.mark.redis
def test_a_revocation_made_on_another_replica_holds_when_the_policy_store_is_unreachable_at_startup(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, redis_server: str, tmp_path: Path
) -> None:
    """The replica learns the revocation from the store (its sync), not from its own admin API."""
    cfg = config(upstream, upstream2, redis={"url": redis_server})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    here, there = Restarts(tmp_path / "a"), Restarts(tmp_path / "b")
    try:
        replica = here.start(cfg)
        admin(there.start(cfg)).delete("/admin/keys/app")
        deadline = time.monotonic() + 5
        while not refused(replica, CLIENT_KEY):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        there.stop()
        gw = here.start(config(upstream, upstream2, redis={"url": "redis://127.0.0.1:9/0"}))
        assert refused(gw, CLIENT_KEY)
    finally:
        here.stop()
        there.stop()


def test_an_unreadable_local_copy_of_the_revocations_is_named_in_a_warning_and_the_file_is_served(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts, tmp_path: Path
) -> None:
    copy = tmp_path / "data" / "revoked_keys.json"
    copy.parent.mkdir()
    copy.write_text('{"format": 1, "revoked": {"not a dig')
    gw = restarts.start(config(upstream, upstream2, redis={"url": "redis://127.0.0.1:9/0"}))
    chat(sdk(gw, CLIENT_KEY))
    log = gw.log.read_text()
    assert any("WARNING" in ln and str(copy) in ln for ln in log.splitlines()), log[-3000:]


def test_a_revoked_environment_key_is_named_with_the_variable_that_gives_its_secret(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts
) -> None:
    env = {"POINTSMAN_API_KEY": "sk-test-from-env-0003"}
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg, env)).delete("/admin/keys/env")
    gw = restarts.start(edited(cfg), env)
    assert refused(gw, env["POINTSMAN_API_KEY"])
    lines = warnings_naming(gw, "env")
    assert len(lines) == 1, gw.log.read_text()[-3000:]
    assert "POINTSMAN_API_KEY" in lines[0] and "config file" not in lines[0]


def test_an_environment_keys_rotated_secret_given_way_to_the_variable_is_named_with_the_variable(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts
) -> None:
    env = {"POINTSMAN_API_KEY": "sk-test-from-env-0003"}
    cfg = config(upstream, upstream2)
    admin(restarts.start(cfg, env)).post("/admin/keys/env/rotate")
    gw = restarts.start(edited(cfg), env)
    log = gw.log.read_text()
    lines = [ln for ln in log.splitlines() if "WARNING" in ln and "'env': its secret from" in ln]
    assert len(lines) == 1, log[-3000:]
    assert "POINTSMAN_API_KEY gives it another secret" in lines[0]


# -- the policy store emptied (a Redis without persistence, a database restored empty, a deleted file) ----------


def wipe(sections: dict[str, Any], tmp_path: Path) -> None:
    """Empty the policy store of ``store_sections``: versions, the imported file's hash and the revocations, in one
    step (a running gateway that finds the store empty imports its policy and revocations again: deleted one key at
    a time, the rest of the wipe could delete what it had just restored)."""
    if "redis" in sections:
        import redis

        with redis.Redis.from_url(sections["redis"]["url"]) as r:
            keys = list(r.scan_iter("pointsman:policy:*"))
            if keys:
                r.delete(*keys)  # (one DEL: atomic)
    elif "database" in sections:
        import psycopg

        with psycopg.connect(sections["database"]["dsn"]) as conn, conn.transaction():
            for table in ("policy_versions", "policy_meta", "revoked_keys"):
                conn.execute(f"DELETE FROM policy.{table}")
    else:
        for p in (tmp_path / "data").glob("policy.sqlite3*"):
            p.unlink()


def test_a_deleted_keys_secret_stays_revoked_when_the_policy_store_comes_back_empty(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts, store: dict[str, Any], tmp_path: Path
) -> None:
    """The config file is imported into the empty store again, and it still holds the deleted key's secret."""
    cfg = config(upstream, upstream2, **store)
    assert admin(restarts.start(cfg)).delete("/admin/keys/app").status_code == 200
    restarts.stop()
    wipe(store, tmp_path)
    gw = restarts.start(cfg)
    assert refused(gw, CLIENT_KEY)
    chat(sdk(gw, TEAM_KEY))


def test_an_emptied_policy_store_gets_back_the_revocations_a_gateway_knew(
    upstream: FakeOpenAI,
    upstream2: FakeOpenAI,
    shared_store: tuple[dict[str, Any], dict[str, Any]],
    tmp_path: Path,
) -> None:
    """A replica started later with no local copy of its own (a new pod) refuses the secret too: it is in the
    store again."""
    up, _ = shared_store
    cfg = config(upstream, upstream2, **up)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, new_pod = Restarts(tmp_path / "a"), Restarts(tmp_path / "b")
    try:
        admin(first.start(cfg)).delete("/admin/keys/app")
        first.stop()
        wipe(up, tmp_path)
        log = first.start(cfg).log.read_text()
        assert "the policy store is empty" in log and "1 revoked client key secret" in log
        assert refused(new_pod.start(cfg), CLIENT_KEY)
    finally:
        first.stop()
        new_pod.stop()


@pytest.mark.redis
def test_a_policy_store_emptied_while_the_gateway_runs_keeps_a_revoked_secret_revoked(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, restarts: Restarts, redis_server: str, tmp_path: Path
) -> None:
    """The running gateway finds the empty store at its next sync and imports the config file into it again."""
    import redis

    wipe({"redis": {"url": redis_server}}, tmp_path)  # what earlier tests left
    cfg = config(upstream, upstream2, redis={"url": redis_server}, routing={"sync_interval_s": 0.05})
    gw = restarts.start(cfg)
    assert admin(gw).delete("/admin/keys/app").status_code == 200
    wipe({"redis": {"url": redis_server}}, tmp_path)
    deadline = time.monotonic() + 5
    with redis.Redis.from_url(redis_server) as r:
        while not r.exists("pointsman:policy:head"):  # imported again
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.hexists("pointsman:policy:revoked", hash_key(CLIENT_KEY))
    assert refused(gw, CLIENT_KEY)
    chat(sdk(gw, TEAM_KEY))
