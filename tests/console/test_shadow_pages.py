"""The console's Shadow pages over real HTTP: the verdict and the report's figures per route, the pair browser
(both answers when captured, comparator scores), promotion and its rollback behind a confirmation, and the
promotion timeline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from gateway.console.shadow_pages import answer_text
from tests.conftest import ADMIN_KEY
from tests.console.test_console_http import RO_KEY, config, csrf, login, send_chats
from tests.gateway_runner import RunningGateway

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def shadow_config() -> dict[str, object]:
    """The console tests' config whose ``chat`` route shadows ``own-model`` (captured, promotable)."""
    cfg = config()
    cfg["routes"] = [
        {
            "name": "chat",
            "match": {"tags": {"task": "chat"}},
            "targets": [{"model": "gpt-4o-mini"}],
            "shadow": {
                "model": "own-model",
                "sample_rate": 1.0,
                "capture": True,
                "compare": [{"type": "token_f1"}],
                "promotion": {"steps": [50.0, 100.0], "dwell_requests": 1000, "require_ready": False},
            },
        }
    ]
    return cfg


def pairs(gw: RunningGateway) -> list[dict[str, object]]:
    out: list[dict[str, object]] = httpx.get(f"{gw.url}/admin/shadow/pairs", headers=ADMIN).json()["data"]
    return out


@contextmanager
def shadow_gateway() -> Iterator[RunningGateway]:
    """A gateway with ``shadow_config``, the team's capture approved and four shadowed requests paired."""
    with RunningGateway(shadow_config()) as g:
        httpx.post(f"{g.url}/admin/teams/search/capture", headers=ADMIN, json={"approved_by": "test"})
        send_chats(g, ["chat"] * 4)
        deadline = time.time() + 10
        while len(pairs(g)) < 4 and time.time() < deadline:
            time.sleep(0.05)
        yield g


@pytest.fixture(scope="module")
def gw() -> Iterator[RunningGateway]:
    with shadow_gateway() as g:
        yield g


def test_the_shadow_page_shows_each_routes_verdict_figures_and_charts(gw: RunningGateway) -> None:
    with login(gw, RO_KEY) as c:
        page = c.get("/console/shadow").text
    assert 'id="shadow-chat"' in page
    assert 'class="verdict v-' in page and "<svg" in page and "Comparators" in page
    assert "Promote" not in page  # read-only


def test_the_pair_browser_shows_both_answers_and_the_scores(gw: RunningGateway) -> None:
    first = pairs(gw)[0]
    with login(gw, RO_KEY) as c:
        listed = c.get("/console/shadow/pairs", params={"route": "chat"}).text
        page = c.get(f"/console/shadow/pairs/{first['id']}").text
    assert str(first["id"]) in listed
    assert 'id="side-primary"' in page and 'id="side-candidate"' in page
    assert page.count('<pre class="answer"') == 2 and 'id="not-captured"' not in page
    assert "token_f1" in page


def test_promotion_needs_the_confirmation(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/shadow").text)
        r = c.post("/console/shadow/chat/promote", data={"csrf": token, "force": "yes"})
    assert r.status_code == 400 and 'id="shadow-error"' in r.text
    assert httpx.get(f"{gw.url}/admin/routes/chat/promotion", headers=ADMIN).json()["promotion"] is None


def test_promoting_and_rolling_back_show_in_the_timeline(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/shadow").text)
        data = {"csrf": token, "confirm": "yes", "force": "yes"}
        assert c.post("/console/shadow/chat/promote", data=data).status_code == 303
        promoted = c.get("/console/shadow").text
        back = c.post("/console/shadow/chat/rollback", data={**data, "reason": "checked by hand"})
        assert back.status_code == 303
        rolled = c.get("/console/shadow").text
    assert (
        "Status <b>ramping</b>" in promoted and "<td>start</td>" in promoted and "<td>step</td>" in promoted
    )
    assert "<td>rollback</td>" in rolled and "checked by hand" in rolled


def test_a_captured_answer_is_shown_as_its_text() -> None:
    assert answer_text({"text": "hello", "finish_reason": "stop"}) == "hello"
    assert answer_text(None) == ""
