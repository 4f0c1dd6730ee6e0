"""Capture through a running gateway: consent, sampling, policies, redaction of what is stored."""

from __future__ import annotations

from pathlib import Path

import openai
import orjson
import pytest

from gateway.config import ConfigError, validate_document
from tests.capture.conftest import PLAIN, SOLO_KEY, SUPPORT, Admin, ask, capture_config
from tests.capture.planted import PLANTED, leaked, planted_messages
from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway


def test_unapproved_team_has_nothing_stored(client: openai.OpenAI, admin: Admin) -> None:
    for _ in range(3):
        ask(client)
    assert admin.traces() == []


def test_admin_api_says_why_an_unapproved_team_is_not_captured(admin: Admin) -> None:
    status = admin.get("/admin/capture/status", route="support", team="search").json()
    assert status["capturing"] is False
    assert status["policy_source"] == "route"
    assert status["reason"] == "data capture not approved for team search"


def test_requests_of_an_unapproved_team_are_counted_not_stored(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    ask(client)
    metrics = admin.get("/metrics").text
    assert 'pointsman_capture_traces_total{outcome="not_approved",route="support"} 1.0' in metrics


def test_key_without_team_is_never_captured(gateway: RunningGateway, admin: Admin) -> None:
    admin.approve("search")
    with openai.OpenAI(base_url=gateway.base_url, api_key=SOLO_KEY, max_retries=0) as solo:
        ask(solo)
    assert admin.traces() == []
    status = admin.get("/admin/capture/status", route="support", key="solo").json()
    assert "has no team" in status["reason"]


def test_approval_records_who_and_when(admin: Admin) -> None:
    admin.approve("search", by="alice@example.org")
    doc = admin.get("/admin/teams/search/capture").json()
    assert doc["approved"] is True
    assert doc["actor"] == "alice@example.org"
    assert doc["at"] > 0
    assert doc["history"][0]["action"] == "approved"


def test_approved_team_gets_its_requests_stored(client: openai.OpenAI, admin: Admin) -> None:
    admin.approve()
    ids = {ask(client, f"question {i}") for i in range(3)}
    traces = admin.traces()
    assert {t["request_id"] for t in traces} == ids
    assert all(t["team"] == "search" and t["route"] == "support" for t in traces)


def test_stored_trace_has_every_planted_item_redacted(
    client: openai.OpenAI, admin: Admin, upstream: FakeOpenAI
) -> None:
    admin.approve()
    upstream.content = f"Refunded. Receipt sent to {PLANTED['email'][0]} from {PLANTED['ipv4'][0]}."
    rid = ask(client, messages=planted_messages())
    admin.flush()
    trace = admin.get(f"/admin/capture/traces/{rid}").json()
    text = orjson.dumps(trace).decode()
    assert leaked([text]) == []
    assert [name for name, (_, placeholder) in PLANTED.items() if placeholder not in text] == []
    assert trace["output"][0]["message"]["content"] == "Refunded. Receipt sent to [EMAIL] from [IP_ADDRESS]."


def test_streamed_answer_is_stored_reassembled_and_redacted(
    client: openai.OpenAI, admin: Admin, upstream: FakeOpenAI
) -> None:
    admin.approve()
    upstream.content = f"Call us back at {PLANTED['phone'][0]} please."
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=planted_messages(), extra_headers=SUPPORT
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    (trace,) = admin.traces()
    assert trace["stream"] is True
    assert trace["output"][0]["message"]["content"] == "Call us back at [PHONE] please."
    assert leaked([orjson.dumps(trace).decode()]) == []


def test_route_without_capture_policy_stores_nothing(client: openai.OpenAI, admin: Admin) -> None:
    admin.approve()
    ask(client, headers=PLAIN)
    assert admin.traces() == []


def test_sample_rate_captures_a_fraction(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = capture_config(upstream.url, tmp_path)
    cfg["routes"][0]["capture"]["sample_rate"] = 0.5
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        admin = Admin(gw)
        admin.approve()
        for i in range(120):
            ask(c, f"q{i}")
        stored = len(admin.traces(limit=1000))
        admin.close()
    assert 25 <= stored <= 95  # binomial(120, 0.5): outside this range with probability < 1e-9


def test_key_policy_with_zero_rate_opts_a_key_out(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = capture_config(upstream.url, tmp_path)
    cfg["keys"][0]["capture"] = {"sample_rate": 0}
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        admin = Admin(gw)
        admin.approve()
        ask(c)
        assert admin.traces() == []
        assert admin.get("/admin/capture/status", route="support", key="app").json()["policy_source"] == "key"
        admin.close()


def test_team_policy_captures_on_routes_without_one(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = capture_config(upstream.url, tmp_path)
    cfg["capture"]["teams"] = {"search": {"sample_rate": 1.0, "retain_days": 7}}
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        admin = Admin(gw)
        admin.approve()
        rid = ask(c, headers=PLAIN)
        (trace,) = admin.traces()
        admin.close()
    assert trace["request_id"] == rid
    assert trace["expires_at"] - trace["ts"] == pytest.approx(7 * 86400)


def test_revoking_approval_stops_capture(client: openai.OpenAI, admin: Admin) -> None:
    admin.approve()
    ask(client)
    admin.revoke()
    ask(client)
    assert len(admin.traces()) == 1


def test_revoking_with_purge_deletes_the_team_data(client: openai.OpenAI, admin: Admin) -> None:
    admin.approve()
    ask(client)
    admin.flush()
    out = admin.revoke(purge=True)
    assert out["deleted"] == {"traces": 1, "feedback": 0}
    assert admin.traces() == []


def test_approval_survives_a_restart(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = capture_config(upstream.url, tmp_path)
    with RunningGateway(cfg) as gw:
        a = Admin(gw)
        a.approve(by="carol")
        a.close()
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        a = Admin(gw)
        ask(c)
        assert len(a.traces()) == 1
        assert a.get("/admin/teams/search/capture").json()["actor"] == "carol"
        a.close()


def test_failed_requests_are_not_captured(client: openai.OpenAI, admin: Admin) -> None:
    admin.approve()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="fake-fail_500", messages=[{"role": "user", "content": "x"}], extra_headers=SUPPORT
        )
    assert admin.traces() == []


def test_unknown_detector_in_a_route_policy_is_a_config_error(tmp_path: Path) -> None:
    cfg = capture_config("http://127.0.0.1:9/v1", tmp_path)
    cfg["routes"][0]["capture"]["redact"] = ["builtin", "employe_id"]
    with pytest.raises(ConfigError, match=r"routes\[0\].capture.redact: unknown detectors \['employe_id'\]"):
        validate_document(cfg, "<test>")


def test_other_components_can_redact_a_document_with_every_detector(gateway: RunningGateway) -> None:
    doc = {"request": {"messages": planted_messages()}, "primary": {"text": f"mail {PLANTED['email'][0]}"}}
    out = gateway.state.capture.redact_document(doc)
    assert leaked([orjson.dumps(out).decode()]) == []
    assert out["primary"]["text"] == "mail [EMAIL]"
