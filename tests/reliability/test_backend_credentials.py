"""A backend's credentials are its ``api_key`` and every value in its ``headers`` (an Azure-style ``api-key``):
never shown by the admin API, the policy history or the console (the read-only login included), with the header
names kept visible; a header sent back as ``***`` keeps the stored value. Against a running gateway.

The tests share one gateway; those that change a backend use a backend of their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.console.test_console_http import RO_KEY, login
from tests.fakes.openai_upstream import FakeOpenAI, Seen
from tests.gateway_runner import RunningGateway
from tests.reliability.probes import ADMIN, MSG

HEADER_KEY = "azure-header-secret-5d1c0b9e77"
TENANT = "tenant-header-value-31f4a2"
MASKED = {"api-key": "***", "x-tenant": "***"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="azure-like").start()
    yield fake
    fake.stop()


def azure(url: str, key: str = HEADER_KEY) -> dict[str, Any]:
    """An Azure-style backend: the provider key travels as the ``api-key`` header, not as Bearer."""
    return {"type": "openai", "base_url": url, "headers": {"api-key": key, "x-tenant": TENANT}}


@pytest.fixture(scope="module")
def gw(upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    names = ("azure", "kept", "cased")
    cfg = {
        "admin_key": ADMIN_KEY,
        "console": {"enabled": True, "read_only_key": RO_KEY},
        "backends": {n: azure(upstream.url) for n in names},
        "models": {n: {"backend": n, "upstream_model": f"{n}-upstream"} for n in names},
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
    }
    with RunningGateway(cfg) as g:
        yield g


def get(gw: RunningGateway, path: str) -> httpx.Response:
    r = httpx.get(gw.url + path, headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    return r


def send(gw: RunningGateway, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    r = httpx.request(method, gw.url + path, headers=ADMIN, json=body, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r


def served(gw: RunningGateway, upstream: FakeOpenAI, model: str) -> Seen:
    """Ask ``model`` once; what its upstream received."""
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        c.chat.completions.create(model=model, messages=MSG)  # type: ignore[arg-type]
    return [s for s in upstream.requests if s.body.get("model") == f"{model}-upstream"][-1]


def test_backend_list_masks_every_header_value_and_keeps_the_names(gw: RunningGateway) -> None:
    r = get(gw, "/admin/backends")
    assert HEADER_KEY not in r.text and TENANT not in r.text
    assert r.json()["backends"]["azure"]["headers"] == MASKED


def test_one_backend_masks_every_header_value_and_keeps_the_names(gw: RunningGateway) -> None:
    r = get(gw, "/admin/backends/azure")
    assert HEADER_KEY not in r.text and TENANT not in r.text
    assert r.json()["backend"]["headers"] == MASKED


def test_policy_history_masks_header_values(gw: RunningGateway) -> None:
    r = get(gw, "/admin/routes/history/1")
    assert HEADER_KEY not in r.text and TENANT not in r.text
    assert r.json()["policy"]["backends"]["azure"]["headers"] == MASKED


@pytest.mark.parametrize("key", [RO_KEY, ADMIN_KEY], ids=["read_only", "admin"])
def test_console_policy_version_page_masks_header_values(gw: RunningGateway, key: str) -> None:
    with login(gw, key) as c:
        page = c.get("/console/routes/history/1")
    assert page.status_code == 200
    assert HEADER_KEY not in page.text and TENANT not in page.text
    assert "api-key" in page.text  # the name stays visible


def test_created_backend_is_answered_with_its_header_values_masked(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    r = send(gw, "POST", "/admin/backends", {"name": "created", **azure(upstream.url)})
    assert HEADER_KEY not in r.text and TENANT not in r.text
    assert r.json()["backend"]["headers"] == MASKED


def test_header_sent_back_masked_keeps_the_stored_value(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    send(gw, "PUT", "/admin/backends/kept", {**azure(upstream.url, "***"), "timeout_s": 60})
    assert served(gw, upstream, "kept").headers["api-key"] == HEADER_KEY


def test_header_sent_back_masked_under_another_case_keeps_the_stored_value(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    body = {"type": "openai", "base_url": upstream.url, "headers": {"API-Key": "***", "x-tenant": TENANT}}
    send(gw, "PUT", "/admin/backends/cased", body)
    assert served(gw, upstream, "cased").headers["api-key"] == HEADER_KEY


def test_masked_header_with_nothing_stored_behind_it_is_not_sent_upstream(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    send(gw, "PUT", "/admin/backends/new", azure(upstream.url, "***"))
    send(gw, "PUT", "/admin/models/new", {"backend": "new", "upstream_model": "new-upstream"})
    seen = served(gw, upstream, "new")
    assert "api-key" not in seen.headers
    assert seen.headers["x-tenant"] == TENANT
