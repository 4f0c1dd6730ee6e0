"""The console's Routes pages over real HTTP: edit with the config check's errors at their field path, history
with diffs, rollback and explain, all through the admin API's own operations."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from gateway.console.routes_pages import explain_body, version_diff
from tests.conftest import ADMIN_KEY
from tests.console.test_console_http import RO_KEY, config, csrf, login
from tests.gateway_runner import RunningGateway

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SPLIT = {
    "name": "split",
    "match": {"tags": {"task": "split"}},
    "targets": [{"model": "gpt-4o-mini", "weight": 3}, {"model": "own-model", "weight": 2}],
}


def split_config() -> dict[str, object]:
    """The console tests' config with a second rule, ``split``, that has weighted targets."""
    cfg = config()
    cfg["routes"] = [*cfg["routes"], SPLIT]  # type: ignore[misc]
    return cfg


@pytest.fixture(scope="module")
def gw() -> Iterator[RunningGateway]:
    with RunningGateway(split_config()) as g:
        yield g


def rule(gw: RunningGateway, name: str) -> dict[str, object]:
    out: dict[str, object] = httpx.get(f"{gw.url}/admin/routes/{name}", headers=ADMIN).json()["route"]
    return out


def post(c: httpx.Client, page: str, path: str, **data: str) -> httpx.Response:
    """POST ``data`` to ``path`` with the CSRF token read from ``page``, as the page's form does."""
    return c.post(path, data={"csrf": csrf(c.get(page).text), **data})


def save(c: httpx.Client, name: str, doc: object) -> httpx.Response:
    return post(c, f"/console/routes/{name}", f"/console/routes/{name}", rule=json.dumps(doc))


def test_an_invalid_weight_is_shown_at_its_field_path_and_changes_nothing(gw: RunningGateway) -> None:
    bad = {**SPLIT, "targets": [{"model": "gpt-4o-mini", "weight": -2}, {"model": "own-model"}]}
    with login(gw, ADMIN_KEY) as c:
        r = save(c, "split", bad)
    assert r.status_code == 400
    assert '<li data-path="routes[1].targets[0].weight">' in r.text
    assert "&#34;weight&#34;: -2" in r.text  # what was typed stays in the editor
    assert rule(gw, "split")["targets"] == SPLIT["targets"]


def test_text_that_is_not_json_is_refused_in_the_page(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        r = post(c, "/console/routes/split", "/console/routes/split", rule="{not json")
    assert r.status_code == 400 and "Not JSON" in r.text


def test_a_valid_change_is_saved_and_shows_in_history_with_its_diff(gw: RunningGateway) -> None:
    changed = {
        **SPLIT,
        "targets": [{"model": "gpt-4o-mini", "weight": 5}, {"model": "own-model", "weight": 2}],
    }
    with login(gw, ADMIN_KEY) as c:
        r = save(c, "split", changed)
        assert r.status_code == 200 and 'id="saved"' in r.text
        version = int(re.search(r"Saved as policy version (\d+)", r.text).group(1))  # type: ignore[union-attr]
        history = c.get("/console/routes/history").text
        diff = c.get(f"/console/routes/history/{version}").text
    assert rule(gw, "split")["targets"] == changed["targets"]
    assert f'id="version-{version}"' in history and "update route split" in history
    assert "+" in diff and "&#34;weight&#34;: 5" in diff and "&#34;weight&#34;: 3" in diff


def test_rolling_back_makes_the_old_rules_current_again(gw: RunningGateway) -> None:
    start = httpx.get(f"{gw.url}/admin/routes", headers=ADMIN).json()["version"]
    before = rule(gw, "chat")
    with login(gw, ADMIN_KEY) as c:
        assert save(c, "chat", {**before, "targets": [{"model": "own-model"}]}).status_code == 200
        r = post(c, "/console/routes/history", "/console/routes/rollback", version=str(start), confirm="on")
        assert r.status_code == 303
    assert rule(gw, "chat") == before


def test_rolling_back_to_a_version_that_does_not_exist_shows_the_error(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        r = post(c, "/console/routes/history", "/console/routes/rollback", version="999999")
    assert r.status_code == 400 and 'class="error"' in r.text


def test_explain_shows_the_rule_the_target_and_why(gw: RunningGateway) -> None:
    with login(gw, RO_KEY) as c:
        page = c.get("/console/routes/explain", params={"model": "gpt-4o-mini", "task": "chat"}).text
    m = re.search(r'<div class="panel" id="explained">(.*?)</div>', page, re.S)
    assert m is not None
    assert "Rule <b>chat</b>" in m.group(1) and "target <b>gpt-4o-mini</b>" in m.group(1)
    assert "Why:" in m.group(1)


def test_explain_of_an_unknown_key_shows_the_error(gw: RunningGateway) -> None:
    with login(gw, RO_KEY) as c:
        r = c.get("/console/routes/explain", params={"model": "gpt-4o-mini", "key": "nobody"})
    assert r.status_code == 400 and 'id="explain-error"' in r.text


def test_a_read_only_login_gets_a_read_only_editor(gw: RunningGateway) -> None:
    with login(gw, RO_KEY) as c:
        page = c.get("/console/routes/split").text
    assert "readonly" in page and ">Save<" not in page


def test_a_version_diff_marks_removed_and_added_lines() -> None:
    diff = version_diff({"routes": [{"name": "a"}]}, {"routes": [{"name": "b"}]})
    assert '-      "name": "a"' in diff and '+      "name": "b"' in diff


def test_the_first_versions_diff_adds_every_line() -> None:
    diff = version_diff(None, {"routes": []})
    assert '+  "routes": []' in diff and "\n-" not in diff


def test_explain_form_fields_become_the_admin_explain_request() -> None:
    assert explain_body(" m ", "a=1, b = 2", "chat", "app") == {
        "body": {"model": "m"},
        "headers": {"X-Pointsman-Task": "chat", "X-Pointsman-Tags": "a=1, b=2"},
        "key": "app",
    }
    assert explain_body("m", "", "", "") == {"body": {"model": "m"}, "headers": {}}
