"""Raw prompts and outputs are stored with a pair only where the route enables capture AND the key's team has
approved data capture (``POST /admin/teams/{team}/capture``; the hub asks through its ``capture_allowed`` hook)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import CLIENT_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import admin, ask, config, settle, shadow_route, zoo_models
from tests.shadow.fakes import ModelZoo

OTHER_KEY = "sk-test-other-team-0001"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    zoo = ModelZoo(zoo_models()).start()
    cfg = config(
        zoo,
        tmp_path_factory.mktemp("capture"),
        {"model": "cand"},
        extra_routes=[
            shadow_route("cap", {"model": "cand", "capture": True}),
            shadow_route("nocap", {"model": "cand"}),
        ],
        keys=[
            {"name": "app", "key": CLIENT_KEY, "team": "search"},
            {"name": "other", "key": OTHER_KEY, "team": "elsewhere"},
        ],
    )
    with RunningGateway(cfg) as gw:
        app = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
        other = openai.OpenAI(base_url=gw.base_url, api_key=OTHER_KEY, max_retries=0)
        ask(app, 1, model="f-cap")  # no team has approved capture yet
        with admin(gw) as a:
            a.post(
                "/admin/teams/search/capture", json={"approved_by": "data-governance ticket 42"}
            ).raise_for_status()
        ask(app, 2, model="f-cap")
        ask(other, 3, model="f-cap")
        ask(app, 4, model="f-nocap")
        app.chat.completions.create(
            model="f-cap",
            extra_headers={"x-request-id": "req-5"},
            messages=[{"role": "user", "content": "Write to alice@example.com"}],
        )
        settle(gw, 5)
        with admin(gw) as a:
            yield {p["id"]: p for p in a.get("/admin/shadow/pairs").json()["data"]}
        app.close()
        other.close()
    zoo.stop()


def test_capture_stays_off_until_team_capture_is_approved(pairs: dict[str, dict[str, Any]]) -> None:
    assert pairs["req-1"]["capture"] is None


def test_capture_stores_the_request_and_both_answers_for_an_allowed_team(
    pairs: dict[str, dict[str, Any]],
) -> None:
    cap = pairs["req-2"]["capture"]
    assert cap["request"]["messages"][0]["content"] == "Extract item 2 as JSON."
    assert cap["primary"]["text"] == cap["candidate"]["text"] == '{"item":2,"label":"positive"}'


def test_capture_is_refused_for_a_team_that_is_not_allowed(pairs: dict[str, dict[str, Any]]) -> None:
    assert pairs["req-3"]["capture"] is None and pairs["req-3"]["outcome"] == "paired"


def test_capture_needs_the_route_to_enable_it(pairs: dict[str, dict[str, Any]]) -> None:
    assert pairs["req-4"]["capture"] is None and pairs["req-4"]["outcome"] == "paired"


def test_captured_pair_text_is_redacted_before_it_is_stored(pairs: dict[str, dict[str, Any]]) -> None:
    content = pairs["req-5"]["capture"]["request"]["messages"][0]["content"]
    assert "alice@example.com" not in content and "[EMAIL]" in content
