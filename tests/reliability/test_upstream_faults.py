"""Upstream faults injected by fake upstreams: each gets its documented behaviour (fallback, retry, clean
OpenAI-shaped error, or an error event then ``[DONE]`` once a stream has started), and the ledger records
each request exactly once."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.reliability.faults import FaultyOpenAI
from tests.reliability.probes import CLIENT, MSG, openai_error, rows_for


def ask(
    gw: RunningGateway, model: str, task: str | None = None, stream: bool = False, **body: Any
) -> tuple[httpx.Response, str]:
    rid = "rel-" + uuid.uuid4().hex
    headers = {**CLIENT, "x-request-id": rid}
    if task:
        headers["x-pointsman-task"] = task
    payload = {"model": model, "messages": MSG, **body}
    if stream:
        payload["stream"] = True
    with httpx.Client(timeout=30) as c:
        r = c.post(gw.url + "/v1/chat/completions", headers=headers, json=payload)
    return r, rid


def one_row(gw: RunningGateway, data: Path, rid: str) -> dict[str, Any]:
    rows = rows_for(gw.url, data, rid)
    assert len(rows) == 1, f"{len(rows)} ledger rows for {rid}"
    return rows[0]


def sse_events(body: bytes) -> list[bytes]:
    return [e[len(b"data: ") :] for e in body.split(b"\n\n") if e.startswith(b"data: ")]


def calls_for(fake: FakeOpenAI, rid: str) -> int:
    return sum(1 for s in fake.requests if s.headers.get("x-request-id") == rid)


# -- connection refused -----------------------------------------------------------------------------------------
def test_connection_refused_is_502_upstream_unreachable(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    r, rid = ask(fault_gateway, "refused-model")
    assert r.status_code == 502
    assert openai_error(r)["code"] == "upstream_unreachable"
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"], row["backend"]) == (502, "upstream_error", "refused")


def test_connection_refused_falls_back_to_the_next_target(
    fault_gateway: RunningGateway, fault_data: Path, backup: FakeOpenAI
) -> None:
    r, rid = ask(fault_gateway, "refused-model", task="fallback")
    assert r.status_code == 200, r.text
    assert r.headers["x-pointsman-backend"] == "backup"
    assert calls_for(backup, rid) == 1
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"], row["backend"], row["fallbacks"]) == (200, "ok", "backup", 1)


# -- reset mid-body / mid-stream ----------------------------------------------------------------------------------
def test_reset_mid_body_is_502(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "fault-reset_mid_body")
    assert r.status_code == 502
    assert openai_error(r)["type"] == "upstream_error"
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"]) == (502, "upstream_error")


def test_reset_mid_body_falls_back(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "fault-reset_mid_body", task="fallback")
    assert r.status_code == 200, r.text
    assert r.headers["x-pointsman-backend"] == "backup"
    assert one_row(fault_gateway, fault_data, rid)["fallbacks"] == 1


def test_reset_mid_stream_ends_with_an_error_event_then_done(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    r, rid = ask(fault_gateway, "fault-reset_mid_stream", stream=True)
    assert r.status_code == 200  # the stream had started: the failure is reported in it
    events = sse_events(r.content)
    assert events[-1] == b"[DONE]"
    err = orjson.loads(events[-2])["error"]
    assert err["type"] == "upstream_error" and err["message"]
    assert any(
        b'"content":"Hello' in e or b'"content":""' in e for e in events[:-2]
    )  # what came first was relayed
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"], row["stream"]) == (200, "upstream_error", 1)


def test_sdk_raises_on_a_stream_reset_mid_way(fault_gateway: RunningGateway) -> None:
    with openai.OpenAI(base_url=fault_gateway.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(model="fault-reset_mid_stream", messages=MSG, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass


# -- slow first byte, stalled stream ------------------------------------------------------------------------------
def test_slow_first_byte_within_the_timeout_is_served(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    r, rid = ask(fault_gateway, "fault-slow")  # 0.5 s, backend allows 3 s
    assert r.status_code == 200, r.text
    assert one_row(fault_gateway, fault_data, rid)["outcome"] == "ok"


def test_slow_first_byte_past_the_backend_timeout_is_504(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    r, rid = ask(fault_gateway, "tight-slow")  # 0.5 s, backend allows 0.3 s
    assert r.status_code == 504
    assert openai_error(r)["code"] == "upstream_timeout"
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"]) == (504, "timeout")


def test_slow_stream_start_past_the_timeout_is_a_json_504_not_a_stream(fault_gateway: RunningGateway) -> None:
    r, _ = ask(fault_gateway, "tight-slow_stream", stream=True)
    assert r.status_code == 504
    assert openai_error(r)["code"] == "upstream_timeout"


def test_slow_first_byte_past_the_timeout_falls_back(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "tight-slow", task="fallback")
    assert r.status_code == 200, r.text
    assert r.headers["x-pointsman-backend"] == "backup"
    assert one_row(fault_gateway, fault_data, rid)["fallbacks"] == 1


def test_stalled_stream_ends_with_a_timeout_event_then_done(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    r, rid = ask(fault_gateway, "stall-stall_mid_stream", stream=True)
    assert r.status_code == 200
    events = sse_events(r.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"]["code"] == "upstream_timeout"
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["outcome"], row["error_type"]) == ("timeout", "timeout")


# -- broken responses -----------------------------------------------------------------------------------------------
def test_invalid_json_is_502_protocol_error(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "fault-bad_json")
    assert r.status_code == 502
    assert openai_error(r)["code"] == "upstream_protocol"
    assert one_row(fault_gateway, fault_data, rid)["outcome"] == "upstream_error"


def test_invalid_json_falls_back(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "fault-bad_json", task="fallback")
    assert r.status_code == 200, r.text
    assert r.headers["x-pointsman-backend"] == "backup"
    assert one_row(fault_gateway, fault_data, rid)["fallbacks"] == 1


def test_wrong_content_type_is_502_protocol_error(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "fault-wrong_ctype")
    assert r.status_code == 502
    assert openai_error(r)["code"] == "upstream_protocol"
    assert "<html>" not in r.text  # the upstream's body is not relayed as if it were an answer
    assert one_row(fault_gateway, fault_data, rid)["status"] == 502


def test_wrong_content_type_on_a_stream_is_a_json_502(fault_gateway: RunningGateway) -> None:
    r, _ = ask(fault_gateway, "fault-wrong_ctype", stream=True)
    assert r.status_code == 502
    assert openai_error(r)["code"] == "upstream_protocol"


def test_wrong_content_type_falls_back(fault_gateway: RunningGateway) -> None:
    r, _ = ask(fault_gateway, "fault-wrong_ctype", task="fallback")
    assert r.status_code == 200
    assert r.headers["x-pointsman-backend"] == "backup"


# -- 429 and 5xx ------------------------------------------------------------------------------------------------------
def test_upstream_429_keeps_its_retry_after(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "fault-retry_after")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert openai_error(r)["type"] == "rate_limit_error"
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"]) == (429, "upstream_rate_limited")  # not the gateway's own limit


def test_upstream_429_falls_back(fault_gateway: RunningGateway) -> None:
    r, _ = ask(fault_gateway, "fault-retry_after", task="fallback")
    assert r.status_code == 200
    assert r.headers["x-pointsman-backend"] == "backup"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_is_a_502_in_the_openai_shape(
    fault_gateway: RunningGateway, fault_data: Path, status: int
) -> None:
    r, rid = ask(fault_gateway, f"fault-fail_{status}")
    assert r.status_code == 502
    assert openai_error(r)["message"]
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"], row["error_type"]) == (502, "upstream_error", "http_5xx")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_falls_back(fault_gateway: RunningGateway, status: int) -> None:
    r, _ = ask(fault_gateway, f"fault-fail_{status}", task="fallback")
    assert r.status_code == 200
    assert r.headers["x-pointsman-backend"] == "backup"


def test_upstream_503_is_retried_max_retries_times(
    fault_gateway: RunningGateway, fault_data: Path, faulty: FaultyOpenAI
) -> None:
    r, rid = ask(fault_gateway, "fault-fail_503", task="retry")
    assert r.status_code == 502
    assert calls_for(faulty, rid) == 3  # the call and max_retries: 2
    assert one_row(fault_gateway, fault_data, rid)["status"] == 502


def test_upstream_400_is_not_retried(fault_gateway: RunningGateway, faulty: FaultyOpenAI) -> None:
    r, rid = ask(fault_gateway, "fault-fail_400", task="retry")
    assert r.status_code == 400
    assert calls_for(faulty, rid) == 1


# -- far larger than usual --------------------------------------------------------------------------------------------
def test_huge_response_is_relayed_whole(fault_gateway: RunningGateway, fault_data: Path) -> None:
    r, rid = ask(fault_gateway, "fault-huge")
    assert r.status_code == 200
    assert len(r.json()["choices"][0]["message"]["content"]) == 4 * 1024 * 1024
    assert one_row(fault_gateway, fault_data, rid)["outcome"] == "ok"


def test_huge_stream_is_relayed_whole(
    fault_gateway: RunningGateway, fault_data: Path, faulty: FaultyOpenAI
) -> None:
    r, rid = ask(fault_gateway, "fault-huge_stream", stream=True)
    assert r.status_code == 200
    events = sse_events(r.content)
    assert events[-1] == b"[DONE]"
    content = "".join(
        orjson.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if orjson.loads(e)["choices"]
    )
    assert len(content) == faulty.huge_chunks * 1024
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["outcome"], row["output_tokens"]) == ("ok", faulty.huge_chunks)


# -- what the client and the ledger are told --------------------------------------------------------------------------
@pytest.mark.parametrize("status", [401, 403])
def test_upstream_refusing_the_gateways_credential_is_a_502_upstream_auth_failed_naming_the_backend(
    fault_gateway: RunningGateway, fault_data: Path, status: int
) -> None:
    r, rid = ask(fault_gateway, f"fault-fail_{status}")
    assert r.status_code == 502  # a gateway-side failure, not the client's bad key
    err = openai_error(r)
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_auth_failed")
    assert "`up`" in err["message"] and "not your API key" in err["message"]
    assert "sk-" not in r.text and "Incorrect API key" not in r.text  # the upstream's echo is not relayed
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"], row["error_type"]) == (502, "upstream_error", "auth")


def test_upstream_refusing_the_gateways_credential_falls_back(fault_gateway: RunningGateway) -> None:
    r, _ = ask(fault_gateway, "fault-fail_401", task="fallback")
    assert r.status_code == 200, r.text
    assert r.headers["x-pointsman-backend"] == "backup"


def test_upstream_5xx_keeps_the_upstreams_message_with_the_gateways_type_and_code(
    fault_gateway: RunningGateway,
) -> None:
    r, _ = ask(fault_gateway, "fault-fail_503")
    err = openai_error(r)
    assert (r.status_code, err["type"], err["code"]) == (502, "upstream_error", "upstream_server_error")
    assert err["message"] == "The engine is currently overloaded, please try again later."


def test_stream_ending_without_done_ends_with_an_error_event_then_done_and_is_recorded_truncated(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    r, rid = ask(fault_gateway, "fault-no_done", stream=True)
    assert r.status_code == 200
    events = sse_events(r.content)
    assert events[-1] == b"[DONE]"
    err = orjson.loads(events[-2])["error"]
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_truncated")
    assert "".join(
        c["delta"].get("content") or "" for e in events[:-2] for c in orjson.loads(e)["choices"]
    ).startswith("Hello")  # everything the upstream sent was relayed first
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["status"], row["outcome"], row["error_type"]) == (200, "truncated", "truncated")


def test_sdk_raises_on_a_stream_that_ends_without_done(fault_gateway: RunningGateway) -> None:
    with openai.OpenAI(base_url=fault_gateway.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(model="fault-no_done", messages=MSG, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIError, match="ended the stream before it was complete"):
            for _ in stream:
                pass


def responses_stream(gw: RunningGateway, model: str) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    rid = "rel-" + uuid.uuid4().hex
    body = {"model": model, "input": "hello", "stream": True}
    with httpx.Client(timeout=30) as c:
        r = c.post(gw.url + "/v1/responses", headers={**CLIENT, "x-request-id": rid}, json=body)
    assert r.status_code == 200
    out = []
    for block in r.content.split(b"\n\n"):
        lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"data" in lines:
            out.append((lines.get(b"event", b"").decode(), orjson.loads(lines[b"data"])))
    return out, rid


def test_responses_stream_ending_with_response_completed_is_ok_without_done(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    events, rid = responses_stream(fault_gateway, "fault-model")
    assert events[-1][0] == "response.completed"  # nothing appended: the Responses API sends no [DONE]
    assert one_row(fault_gateway, fault_data, rid)["outcome"] == "ok"


def test_responses_stream_ending_before_response_completed_ends_with_an_error_event_and_is_truncated(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    events, rid = responses_stream(fault_gateway, "fault-no_done")
    name, last = events[-1]
    assert name == "error" and last["code"] == "upstream_truncated"
    assert last["sequence_number"] == events[-2][1]["sequence_number"] + 1
    assert one_row(fault_gateway, fault_data, rid)["outcome"] == "truncated"


def test_mid_stream_drop_says_the_upstream_closed_the_connection(
    fault_gateway: RunningGateway, fault_data: Path
) -> None:
    r, rid = ask(fault_gateway, "fault-reset_mid_stream", stream=True)
    err = orjson.loads(sse_events(r.content)[-2])["error"]
    assert err["code"] == "upstream_disconnected"
    assert "closed the connection" in err["message"] and "unreachable" not in err["message"]
    row = one_row(fault_gateway, fault_data, rid)
    assert (row["outcome"], row["error_type"]) == ("upstream_error", "disconnect")


def test_upstream_429_counts_as_upstream_rate_limited_not_the_gateways_own(
    fault_gateway: RunningGateway,
) -> None:
    ask(fault_gateway, "fault-retry_after")
    text = httpx.get(fault_gateway.url + "/metrics", timeout=10).text
    assert 'outcome="upstream_rate_limited"' in text
    assert not [
        line
        for line in text.splitlines()
        if line.startswith("pointsman_requests_total") and 'outcome="rate_limited"' in line
    ]


def test_a_large_compressed_answer_leaves_its_pooled_connection_usable(fault_gateway: RunningGateway) -> None:
    """aiohttp's own inflating left the socket read timeout armed on the pooled connection after a large gzip'd
    answer: once it fired, the next request on that connection failed at once (a 504 in 1 ms)."""
    for _ in range(3):
        r, _ = ask(fault_gateway, "tight-gzip_body_2m")
        assert r.status_code == 200 and len(r.content) == 2 * 1024 * 1024
        time.sleep(0.6)  # twice the backend's read timeout
        r, _ = ask(fault_gateway, "tight-model")
        assert r.status_code == 200, r.text
