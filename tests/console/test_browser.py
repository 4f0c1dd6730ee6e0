"""The console in a real headless Chromium: log in, edit a route (an invalid weight's error at its path, a
valid change in history, rollback), explain, capture consent, third-party processing consent, the spend table against the ledger; no browser
console errors on any page, and one screenshot per page (see ``tests/console/browser.py`` for where)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN_KEY
from tests.console.browser import Screenshots, chromium, page_of
from tests.console.test_console_http import RO_KEY, send_chats
from tests.console.test_routes_pages import ADMIN, SPLIT, rule, split_config
from tests.console.test_shadow_pages import pairs, shadow_gateway
from tests.gateway_runner import RunningGateway


@pytest.fixture(scope="module")
def gw() -> Iterator[RunningGateway]:
    with RunningGateway(split_config()) as g:
        send_chats(g, ["chat", "chat", "split"])
        yield g


@pytest.fixture(scope="module")
def shadow_gw() -> Iterator[RunningGateway]:
    with shadow_gateway() as g:
        yield g


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Screenshots:
    return Screenshots(tmp_path_factory.mktemp("console-screenshots"))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    errors: list[str] = []
    with page_of(browser, errors) as p:
        yield p
    assert errors == []


def log_in(page: Page, gw: RunningGateway, key: str = ADMIN_KEY) -> None:
    page.goto(gw.url + "/console/login")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    expect(page.locator("header .brand")).to_be_visible()


def edit(page: Page, gw: RunningGateway, name: str, doc: object) -> None:
    page.goto(gw.url + "/console/routes")
    page.click(f"#route-{name} a")
    page.fill("#rule", json.dumps(doc, indent=2))
    page.click("text=Save")


def test_logging_in_opens_the_overview(page: Page, gw: RunningGateway) -> None:
    log_in(page, gw)
    expect(page.locator("#requests-today")).to_have_text("3")


def test_an_invalid_weight_shows_its_error_at_the_field_path(page: Page, gw: RunningGateway) -> None:
    log_in(page, gw)
    edit(page, gw, "split", {**SPLIT, "targets": [{"model": "gpt-4o-mini", "weight": -1}]})
    expect(page.locator('#errors li[data-path="routes[1].targets[0].weight"]')).to_be_visible()
    assert rule(gw, "split")["targets"] == SPLIT["targets"]


def test_a_saved_change_shows_in_history_and_rolls_back(page: Page, gw: RunningGateway) -> None:
    log_in(page, gw)
    before = httpx.get(f"{gw.url}/admin/routes", headers=ADMIN).json()["version"]
    edit(page, gw, "split", {**SPLIT, "targets": [{"model": "own-model", "weight": 7}]})
    expect(page.locator("#saved")).to_be_visible()
    page.click("text=History")
    expect(page.locator("#history")).to_contain_text("update route split")
    row = page.locator(f"#version-{before}")
    row.locator("input[name=confirm]").check()
    row.locator("button").click()
    expect(page.locator("#history tbody tr").first).to_contain_text(f"rollback to version {before}")
    assert rule(gw, "split")["targets"] == SPLIT["targets"]


def test_explain_shows_the_rule_and_target_for_a_model_and_tags(page: Page, gw: RunningGateway) -> None:
    log_in(page, gw, RO_KEY)
    page.goto(gw.url + "/console/routes")
    page.fill("#explain input[name=model]", "gpt-4o-mini")
    page.fill("#explain input[name=tags]", "task=split")
    page.click("#explain button")
    explained = page.locator("#explained")
    expect(explained).to_contain_text("Rule split")
    expect(explained).to_contain_text("Why:")


def test_approving_and_revoking_capture(page: Page, gw: RunningGateway) -> None:
    log_in(page, gw)
    page.goto(gw.url + "/console/data")
    row = page.locator("#team-search")
    row.locator("input[name=by]").fill("lead@example")
    row.locator("button").click()
    expect(row).to_contain_text("approved")
    expect(row.locator("button")).to_have_text("Revoke")
    row.locator("input[name=by]").fill("lead@example")
    row.locator("button").click()
    expect(row).to_contain_text("revoked")


def test_approving_and_revoking_third_party_processing(page: Page, gw: RunningGateway) -> None:
    log_in(page, gw)
    page.goto(gw.url + "/console/consent")
    row = page.locator("#consent-search")
    expect(row.locator(".state")).to_have_text("approved")  # consent.third_party defaults to not_required
    row.locator("input[name=by]").fill("dpo@example")
    row.locator("input[name=note]").fill("customer opted out")
    row.locator("button").click()
    expect(row.locator(".state")).to_have_text("not approved")
    expect(row).to_contain_text("customer opted out")
    expect(row.locator("button")).to_have_text("Approve")
    row.locator("input[name=by]").fill("lead@example")
    row.locator("button").click()
    expect(row.locator(".state")).to_have_text("approved")
    expect(page.locator("#history-search")).to_contain_text("dpo@example")
    expect(page.locator("#history-search")).to_contain_text("lead@example")


def test_the_spend_table_shows_the_ledgers_figures(page: Page, gw: RunningGateway) -> None:
    ledger = httpx.get(f"{gw.url}/admin/spend", params={"group_by": "route"}, headers=ADMIN).json()
    log_in(page, gw, RO_KEY)
    page.goto(gw.url + "/console/spend?group_by=route")
    expect(page.locator("#spend-total")).to_have_text("$" + ledger["total"]["cost_usd"])
    for row in ledger["data"]:
        expect(page.locator("table").first).to_contain_text(str(row["cost_usd"]))


def test_promoting_a_shadowed_route_shows_in_the_timeline(
    page: Page, shadow_gw: RunningGateway, shots: Screenshots
) -> None:
    log_in(page, shadow_gw)
    page.goto(shadow_gw.url + "/console/shadow")
    section = page.locator("#shadow-chat")
    expect(section.locator(".verdict")).to_contain_text("Verdict:")
    shots.take(page, "shadow")
    form = section.locator("form.promote")
    form.locator("input[name=confirm]").check()
    form.locator("input[name=force]").check()
    form.locator("button").click()
    expect(page.locator("#shadow-chat .promotion-state")).to_contain_text("ramping")
    expect(page.locator("#shadow-chat table.timeline")).to_contain_text("start")
    shots.take(page, "shadow-promoted")


def test_the_pair_browser_shows_both_answers(
    page: Page, shadow_gw: RunningGateway, shots: Screenshots
) -> None:
    log_in(page, shadow_gw, RO_KEY)
    page.goto(shadow_gw.url + "/console/shadow/pairs")
    shots.take(page, "shadow-pairs")
    page.click(f"text={pairs(shadow_gw)[0]['id']}")
    expect(page.locator("#side-primary pre.answer")).to_be_visible()
    expect(page.locator("#side-candidate pre.answer")).to_be_visible()
    shots.take(page, "shadow-pair")


PAGES = {
    "overview": "/console",
    "routes": "/console/routes/explain?model=gpt-4o-mini&task=chat",
    "route-edit": "/console/routes/split",
    "route-history": "/console/routes/history",
    "route-version": "/console/routes/history/1",
    "spend": "/console/spend",
    "data": "/console/data",
    "consent": "/console/consent",
    "keys": "/console/keys",
}


def test_every_page_renders_without_console_errors(
    page: Page, gw: RunningGateway, shots: Screenshots
) -> None:
    log_in(page, gw)
    for name, path in PAGES.items():
        response = page.goto(gw.url + path)
        assert response is not None and response.status == 200, path
        assert Path(shots.take(page, name)).stat().st_size > 0
    page.goto(gw.url + "/console/login")
    shots.take(page, "login")
