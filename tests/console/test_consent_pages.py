"""The console's Consent page over real HTTP: a team's third-party processing consent approved and revoked with
who and a note, the decision in force, the history, and the default."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.console.test_console_http import config, csrf, login
from tests.gateway_runner import RunningGateway

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def gw() -> Iterator[RunningGateway]:
    cfg = config()
    cfg["consent"] = {"third_party": "required"}
    cfg["backends"]["front"] = {**cfg["backends"]["front"], "third_party": True}  # type: ignore[index,dict-item]
    with RunningGateway(cfg) as g:
        yield g


def test_the_page_shows_the_default_and_the_third_party_backends(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        page = c.get("/console/consent").text
    assert "not approved (consent.third_party: required)" in page
    assert 'id="consent-search"' in page and "front" in page


def test_approving_a_team_records_who_and_the_note_and_revoking_keeps_the_history(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/consent").text)
        r = c.post(
            "/console/consent/search/approve", data={"csrf": token, "by": "lead@example", "note": "DPA-3"}
        )
        assert r.status_code == 303
        state = httpx.get(gw.url + "/admin/teams/search/consent", headers=ADMIN).json()
        assert state["approved"] is True and state["decision"]["actor"] == "lead@example"
        assert state["decision"]["note"] == "DPA-3"
        r = c.post("/console/consent/search/revoke", data={"csrf": token, "by": "dpo@example"})
        assert r.status_code == 303
        page = c.get("/console/consent").text
    assert 'id="history-search"' in page and "lead@example" in page and "dpo@example" in page
    assert httpx.get(gw.url + "/admin/teams/search/consent", headers=ADMIN).json()["approved"] is False


def test_an_invalid_team_name_is_shown_as_an_error(gw: RunningGateway) -> None:
    with login(gw, ADMIN_KEY) as c:
        token = csrf(c.get("/console/consent").text)
        r = c.post("/console/consent/bad%20team/approve", data={"csrf": token, "by": "x"})
    assert r.status_code == 400 and "Invalid team name" in r.text
