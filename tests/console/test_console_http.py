"""The console over real HTTP: logins, sessions, CSRF, the read-only login, secrets, and pages that show the
ledger's figures and change what the admin API changes."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import RunningGateway

RO_KEY = "ro-console-key-0123456789"
UPSTREAM_SECRET = "sk-simulated-never-shown"
PAGES = (
    "/console",
    "/console/spend",
    "/console/keys",
    "/console/data",
    "/console/consent",
    "/console/spend.csv",
    "/console/routes",
    "/console/routes/chat",
    "/console/routes/history",
    "/console/routes/history/1",
    "/console/shadow",
    "/console/shadow/pairs",
    "/console/routes/explain?model=gpt-4o-mini&task=chat",
)
CHANGES = (
    "/console/routes/chat",
    "/console/routes/rollback",
    "/console/shadow/chat/promote",
    "/console/shadow/chat/rollback",
    "/console/keys",
    "/console/keys/app/revoke",
    "/console/data/search/approve",
    "/console/data/search/revoke",
    "/console/data/export",
    "/console/consent/search/approve",
    "/console/consent/search/revoke",
)


def config(enabled: bool = True) -> dict[str, object]:
    fast = {"median_ms": 2, "p95_ms": 4}
    return {
        "admin_key": ADMIN_KEY,
        "console": {"enabled": enabled, "read_only_key": RO_KEY},
        "backends": {
            "front": {"type": "simulated", "first_token": fast, "tokens_per_s": 10000},
            "own": {"type": "simulated", "first_token": fast, "tokens_per_s": 10000, "self_hosted": True},
        },
        "models": {"gpt-4o-mini": {"backend": "front"}, "own-model": {"backend": "own"}},
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
        "routes": [
            {"name": "chat", "match": {"tags": {"task": "chat"}}, "targets": [{"model": "gpt-4o-mini"}]}
        ],
        "accounting": {
            "pricing": {
                "gpt-4o-mini": {"input_per_mtok": "150", "output_per_mtok": "600"},
                "own-model": {"input_per_mtok": "1", "output_per_mtok": "1"},
            },
            "budgets": [{"scope": "team", "name": "search", "daily_usd": "100"}],
        },
    }


def send_chats(gw: RunningGateway, tasks: list[str]) -> None:
    """One chat request to gpt-4o-mini per task, with the client key and the task header."""
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        for i, task in enumerate(tasks):
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"question {i}"}],
                extra_headers={"X-Pointsman-Task": task},
            )


@pytest.fixture(scope="module")
def gw() -> Iterator[RunningGateway]:
    with RunningGateway(config()) as g:
        send_chats(g, ["chat"] * 5)
        with openai.OpenAI(base_url=g.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
            c.chat.completions.create(model="own-model", messages=[{"role": "user", "content": "hi"}])
        yield g


@contextmanager
def login(gw: RunningGateway, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        r = c.post("/console/login", data={"key": key})
        assert r.status_code == 303, r.text
        yield c


def csrf(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m is not None
    return m.group(1)


def test_login_sets_an_httponly_samesite_strict_cookie_scoped_to_the_console(gw: RunningGateway) -> None:
    r = httpx.post(gw.url + "/console/login", data={"key": ADMIN_KEY})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie


def test_a_wrong_key_cannot_log_in(gw: RunningGateway) -> None:
    r = httpx.post(gw.url + "/console/login", data={"key": CLIENT_KEY})
    assert r.status_code == 401
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("path", PAGES)
def test_no_page_without_a_session(gw: RunningGateway, path: str) -> None:
    r = httpx.get(gw.url + path, cookies={"pointsman_console": "forged.token"})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


@pytest.mark.parametrize("path", CHANGES)
def test_no_change_without_a_session(gw: RunningGateway, path: str) -> None:
    assert httpx.post(gw.url + path, data={"csrf": "x", "name": "k", "by": "me"}).status_code == 401


@pytest.mark.parametrize("path", CHANGES)
def test_every_change_needs_the_sessions_csrf_token(gw: RunningGateway, path: str) -> None:
    with login(gw, ADMIN_KEY) as c:
        assert c.post(path, data={"name": "k", "by": "me"}).status_code == 403
        assert c.post(path, data={"csrf": "wrong", "name": "k", "by": "me"}).status_code == 403
        with login(gw, ADMIN_KEY) as other:
            token = csrf(other.get("/console/keys").text)
        assert c.post(path, data={"csrf": token, "name": "k", "by": "me"}).status_code == 403


@pytest.mark.parametrize("path", CHANGES)
def test_a_read_only_login_sees_pages_but_changes_nothing(gw: RunningGateway, path: str) -> None:
    with login(gw, RO_KEY) as c:
        page = c.get("/console/keys")
        assert page.status_code == 200 and "Revoke" not in page.text
        r = c.post(path, data={"csrf": csrf(page.text), "name": "ro-made", "by": "me"})
        assert r.status_code == 403
    keys = httpx.get(gw.url + "/admin/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["keys"]
    assert "ro-made" not in {k["name"] for k in keys}


def test_no_secret_appears_in_any_page(gw: RunningGateway) -> None:
    for key in (ADMIN_KEY, RO_KEY):
        with login(gw, key) as c:
            for path in PAGES:
                text = c.get(path).text
                for secret in (ADMIN_KEY, RO_KEY, CLIENT_KEY):
                    assert secret not in text, (path, secret)


def test_a_new_keys_secret_is_shown_once(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/keys").text)
        created = c.post("/console/keys", data={"csrf": token, "name": "shown-once", "team": "search"})
        m = re.search(r"<code>([^<]+)</code>", created.text)
        assert m is not None
        secret = m.group(1)
        assert "shown-once" in c.get("/console/keys").text
        assert secret not in c.get("/console/keys").text
        # The secret works as a client key.
        with openai.OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0) as sdk:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert c.post("/console/keys/shown-once/revoke", data={"csrf": token}).status_code == 303
        assert "shown-once" not in c.get("/console/keys").text


def test_the_spend_page_shows_the_ledgers_total(gw: RunningGateway) -> None:
    admin = httpx.get(
        gw.url + "/admin/spend",
        params={"group_by": "route"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    total = admin.json()["total"]
    with login(gw, RO_KEY) as c:
        page = c.get("/console/spend", params={"group_by": "route"}).text
        csv = c.get("/console/spend.csv", params={"group_by": "route"})
    assert f'id="spend-total">${total["cost_usd"]}<' in page
    assert Decimal(total["cost_usd"]) > 0
    assert csv.headers["content-type"].startswith("text/csv") and "chat" in csv.text
    assert "<svg" in page and 'id="budgets"' in page and "search" in page


def test_the_overview_splits_frontier_and_self_hosted(gw: RunningGateway) -> None:
    with login(gw, RO_KEY) as c:
        page = c.get("/console").text
    assert 'id="requests-today">' in page
    assert "frontier" in page and "self-hosted" in page


def test_approving_and_revoking_capture_changes_the_teams_consent(gw: RunningGateway) -> None:
    def approved() -> bool:
        doc = httpx.get(
            gw.url + "/admin/teams/search/capture", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
        return bool(doc.json()["approved"])

    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/data").text)
        assert (
            c.post("/console/data/search/approve", data={"csrf": token, "by": "lead@example"}).status_code
            == 303
        )
        assert approved()
        assert "lead@example" in c.get("/console/data").text
        assert (
            c.post("/console/data/search/revoke", data={"csrf": token, "by": "lead@example"}).status_code
            == 303
        )
        assert not approved()


def test_the_data_page_exports_the_dataset_as_a_zip(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/data").text)
        r = c.post(
            "/console/data/export", data={"csrf": token, "task": "chat", "since": "7d", "holdout": "0.2"}
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith('attachment; filename="dataset-chat-')
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert {"manifest.json", "train.jsonl", "test.jsonl"} <= set(z.namelist())
        manifest = orjson.loads(z.read("manifest.json"))
    assert manifest["filters"]["task"] == "chat" and manifest["filters"]["holdout"] == 0.2


def test_a_bad_export_filter_is_shown_on_the_data_page(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/data").text)
        r = c.post("/console/data/export", data={"csrf": token, "since": "last tuesday"})
    assert r.status_code == 400
    assert 'role="alert"' in r.text and "Dataset export" in r.text


def test_logging_out_ends_the_session(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console").text)
        c.post("/console/logout", data={"csrf": token})
        assert c.get("/console").status_code == 303


def test_the_console_is_off_unless_enabled() -> None:
    with RunningGateway(config(enabled=False)) as g:
        assert httpx.get(g.url + "/console/login").status_code == 404
        assert httpx.post(g.url + "/console/login", data={"key": ADMIN_KEY}).status_code == 404
