from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

OTHER_KEY = "sk-test-other-0001"  # team "ads"
SOLO_KEY = "sk-test-solo-0001"  # no team
SUPPORT = {"x-pointsman-task": "support"}  # the route that asks for capture
PLAIN = {"x-pointsman-task": "plain"}  # a route without a capture policy


def capture_config(upstream_url: str, data_dir: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = basic_config(upstream_url)
    cfg["server"] = {"data_dir": str(data_dir)}
    cfg["keys"] = [
        {"name": "app", "key": CLIENT_KEY, "team": "search"},
        {"name": "other", "key": OTHER_KEY, "team": "ads"},
        {"name": "solo", "key": SOLO_KEY},
    ]
    cfg["capture"] = {"patterns": {"employee_id": r"EMP-\d{6}"}, "flush_interval_s": 0.05}
    cfg["routes"] = [
        {
            "name": "support",
            "match": {"tags": {"task": "support"}},
            "capture": {"sample_rate": 1.0, "redact": ["builtin", "employee_id"], "retain_days": 30},
        },
        {"name": "plain", "match": {"tags": {"task": "plain"}}},
    ]
    cfg.update(extra)
    return cfg


class Admin:
    """The admin API of a running gateway."""

    def __init__(self, gw: RunningGateway) -> None:
        self.http = httpx.Client(
            base_url=gw.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        )

    def approve(self, team: str = "search", by: str = "alice@example.org") -> dict[str, Any]:
        r = self.http.post(f"/admin/teams/{team}/capture", json={"approved_by": by, "note": "DPA-42"})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def revoke(self, team: str = "search", by: str = "bob", purge: bool = False) -> dict[str, Any]:
        r = self.http.delete(f"/admin/teams/{team}/capture", params={"by": by, "purge": str(purge).lower()})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def flush(self) -> None:
        r = self.http.post("/admin/capture/flush")
        assert r.status_code == 200 and r.json()["flushed"], r.text

    def traces(self, **params: Any) -> list[dict[str, Any]]:
        self.flush()
        r = self.http.get("/admin/capture/traces", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def export(self, **params: Any) -> dict[str, Any]:
        r = self.http.get("/admin/datasets/export", params={"format": "json", **params})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def gateway(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    with RunningGateway(capture_config(upstream.url, tmp_path / "data")) as gw:
        yield gw


@pytest.fixture
def admin(gateway: RunningGateway) -> Iterator[Admin]:
    a = Admin(gateway)
    yield a
    a.close()


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def ask(
    client: openai.OpenAI, content: str = "hello", headers: dict[str, str] | None = None, **kw: Any
) -> str:
    """One chat completion on the capturing route; returns its request id."""
    r = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=kw.pop("messages", None) or [{"role": "user", "content": content}],
        extra_headers=headers if headers is not None else SUPPORT,
        **kw,
    )
    return str(r.headers["x-request-id"])


def feedback(gw: RunningGateway, body: dict[str, Any], key: str = CLIENT_KEY) -> httpx.Response:
    return httpx.post(
        gw.base_url + "/feedback", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30
    )
