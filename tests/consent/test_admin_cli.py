"""Consent through the admin API and ``pointsman consent``: every decision recorded with who and when, its
history, what is in force for a team or key and why."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.cli import main
from tests.conftest import ADMIN_KEY
from tests.consent.conftest import ADMIN, consent_config, decide
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway


@pytest.fixture
def gw(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with RunningGateway(consent_config(*upstreams)) as g:
        yield g


def consent(gw: RunningGateway, *args: str) -> int:
    return main(["consent", *args, "--url", gw.url, "--admin-key", ADMIN_KEY])


def test_a_team_without_a_decision_is_not_approved_when_consent_is_required(gw: RunningGateway) -> None:
    d = httpx.get(gw.url + "/admin/teams/growth/consent", headers=ADMIN, timeout=10).json()
    assert (d["approved"], d["decided_by"], d["decision"], d["history"]) == (False, "default", None, [])
    assert d["required"] is True and d["third_party_backends"] == ["provider"]
    assert "PUT /admin/teams/growth/consent" in d["reason"]


def test_an_approval_is_recorded_with_who_when_and_why_and_kept_in_the_history(gw: RunningGateway) -> None:
    decide(gw.url, "team", "growth", True, by="alice@example.com")
    d = decide(gw.url, "team", "growth", False, by="bob@example.com")
    assert (d["approved"], d["decided_by"]) == (False, "team")
    assert d["decision"]["actor"] == "bob@example.com" and d["decision"]["note"] == "DPA-7"
    assert [(e["action"], e["actor"]) for e in d["history"]] == [
        ("approved", "alice@example.com"),
        ("revoked", "bob@example.com"),
    ]
    assert all(isinstance(e["at"], float) for e in d["history"])


def test_a_decision_needs_who_makes_it(gw: RunningGateway) -> None:
    r = httpx.put(gw.url + "/admin/teams/growth/consent", headers=ADMIN, json={"approved": True}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "by"


def test_a_decision_for_an_unknown_key_is_a_404(gw: RunningGateway) -> None:
    r = httpx.put(
        gw.url + "/admin/keys/nobody/consent", headers=ADMIN, json={"approved": True, "by": "x"}, timeout=10
    )
    assert r.status_code == 404


def test_the_overview_lists_the_default_teams_and_key_decisions(gw: RunningGateway) -> None:
    decide(gw.url, "team", "growth", True)
    decide(gw.url, "key", "solo", False)
    d = httpx.get(gw.url + "/admin/consent", headers=ADMIN, timeout=10).json()
    assert d["required"] is True and d["known"] is True
    assert {t["team"]: t["approved"] for t in d["teams"]} == {"growth": True, "search": False}
    assert [(k["key"], k["approved"]) for k in d["keys"]] == [("solo", False)]


def test_the_cli_approves_shows_and_revokes(gw: RunningGateway, capsys: pytest.CaptureFixture[str]) -> None:
    assert consent(gw, "approve", "growth", "--by", "carol@example.com", "--note", "DPA-9") == 0
    assert "approved for team growth by carol@example.com" in capsys.readouterr().out
    assert consent(gw, "status", "growth") == 0
    out = capsys.readouterr().out
    assert "team growth: approved (team)" in out and "carol@example.com" in out and "DPA-9" in out
    assert consent(gw, "revoke", "--key", "app", "--by", "dan@example.com") == 0
    out = capsys.readouterr().out
    assert "revoked for key app" in out
    assert consent(gw, "list") == 0
    out = capsys.readouterr().out
    assert "consent.third_party: required" in out and "provider" in out
    assert "app" in out and "growth" in out


def test_the_cli_needs_a_team_or_a_key(gw: RunningGateway, capsys: pytest.CaptureFixture[str]) -> None:
    assert consent(gw, "approve", "--by", "x") == 2
    assert "give a team, or --key NAME" in capsys.readouterr().err


def test_the_cli_explain_shows_the_consent_and_the_refusal(
    upstreams: tuple[FakeOpenAI, FakeOpenAI], capsys: pytest.CaptureFixture[str]
) -> None:
    routes = [{"name": "away", "match": {"tags": {"task": "away"}}, "targets": [{"model": "gpt-x"}]}]
    with RunningGateway(consent_config(*upstreams, routes=routes)) as g:
        argv = [
            "routes",
            "explain",
            "--model",
            "llama-a",
            "--key",
            "app",
            "--url",
            g.url,
            "--admin-key",
            ADMIN_KEY,
        ]
        assert main([*argv, "--task", "away"]) == 0
        out = capsys.readouterr().out
        assert "NOT approved" in out and "third_party_processing_not_approved" in out
        assert main([*argv, "--model", "gpt-x"]) == 0
        assert "refused" in capsys.readouterr().out
