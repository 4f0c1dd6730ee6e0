"""POST /v1/feedback through a running gateway: joins by request id, metrics, consent, errors."""

from __future__ import annotations

import openai

from tests.capture.conftest import OTHER_KEY, PLAIN, Admin, ask, feedback
from tests.capture.planted import PLANTED, leaked
from tests.gateway_runner import RunningGateway


def test_feedback_joins_the_captured_trace_and_the_ledger_record(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    admin.approve()
    rid = ask(client)
    r = feedback(gateway, {"request_id": rid, "metric": "helpful", "value": True})
    assert r.status_code == 200, r.text
    assert r.json()["joined"] == {"trace": True, "ledger": True}
    (row,) = admin.get("/admin/feedback", request_id=rid).json()["data"]
    assert row["feedback"]["value"] is True
    assert row["trace"]["request_id"] == rid
    assert row["ledger"]["request_id"] == rid
    assert row["ledger"]["route"] == "support"


def test_numeric_feedback_on_an_uncaptured_request_joins_the_ledger(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    rid = ask(client, headers=PLAIN)
    r = feedback(gateway, {"request_id": rid, "metric": "score", "value": 0.75})
    assert r.json()["joined"] == {"trace": False, "ledger": True}
    (row,) = admin.get("/admin/feedback", metric="score").json()["data"]
    assert row["feedback"]["value"] == 0.75
    assert row["feedback"]["route"] == "plain"


def test_feedback_shows_in_prometheus_by_route_task_metric(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    for v in (1, 0.5):
        feedback(gateway, {"request_id": ask(client), "metric": "score", "value": v})
    metrics = admin.get("/metrics").text
    assert 'pointsman_feedback_total{metric="score",route="support",task="support"} 2.0' in metrics
    assert 'pointsman_feedback_value_sum{metric="score",route="support",task="support"} 1.5' in metrics


def test_feedback_summary_gives_count_and_mean(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    for v in (True, False, True, True):
        feedback(gateway, {"request_id": ask(client), "metric": "thumbs_up", "value": v})
    (row,) = admin.get("/admin/feedback/summary", group_by="route,metric").json()["data"]
    assert row == {"route": "support", "metric": "thumbs_up", "count": 4, "value_sum": 3.0, "mean": 0.75}


def test_demonstration_is_stored_redacted(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    admin.approve()
    rid = ask(client)
    fix = f"I refunded you; the receipt went to {PLANTED['email'][0]}, card {PLANTED['card'][0]}."
    r = feedback(gateway, {"request_id": rid, "metric": "correction", "value": fix})
    assert r.json()["kind"] == "demonstration"
    (row,) = admin.get("/admin/feedback", request_id=rid).json()["data"]
    assert row["feedback"]["value"] == [
        {"role": "assistant", "content": "I refunded you; the receipt went to [EMAIL], card [CREDIT_CARD]."}
    ]
    assert leaked([str(row)]) == []


def test_demonstration_from_an_unapproved_team_is_refused(
    client: openai.OpenAI, gateway: RunningGateway
) -> None:
    rid = ask(client)
    r = feedback(gateway, {"request_id": rid, "metric": "correction", "value": "better answer"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "capture_not_approved"
    assert "data capture not approved for team search" in r.json()["error"]["message"]


def test_unknown_request_id_is_404(gateway: RunningGateway) -> None:
    r = feedback(gateway, {"request_id": "no-such-request", "metric": "helpful", "value": True})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "request_not_found"


def test_another_teams_request_is_404(client: openai.OpenAI, gateway: RunningGateway) -> None:
    rid = ask(client)
    r = feedback(gateway, {"request_id": rid, "metric": "helpful", "value": False}, key=OTHER_KEY)
    assert r.status_code == 404


def test_invalid_value_is_an_openai_shaped_400(client: openai.OpenAI, gateway: RunningGateway) -> None:
    rid = ask(client)
    r = feedback(
        gateway, {"request_id": rid, "metric": "helpful", "value": [{"role": "wizard", "content": "x"}]}
    )
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_missing_fields_are_a_400(gateway: RunningGateway) -> None:
    r = feedback(gateway, {"metric": "helpful", "value": True})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "request_id"


def test_feedback_needs_a_client_key(gateway: RunningGateway) -> None:
    r = feedback(gateway, {"request_id": "x", "metric": "m", "value": 1}, key="sk-wrong-key-0000")
    assert r.status_code == 401
