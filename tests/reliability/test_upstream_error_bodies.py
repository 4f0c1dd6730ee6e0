"""An upstream's 4xx answer as the client gets it, from a running gateway in front of an upstream that answers
with bytes the test chose: a body already in the client's API shape comes back byte for byte with its status (its
own members, key order and spacing kept); any other body (FastAPI/vLLM's ``{"detail": ...}``) gets the API's
error shape, with the upstream's document in the message as compact JSON, never a Python repr. ``retry-after-ms``
goes with ``retry-after``; a 5xx is still a 502."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.raw_http import RawUpstream, error_answer
from tests.gateway_runner import RunningGateway
from tests.reliability.probes import openai_error

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
DETAIL = b'{"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]}'
DETAIL_JSON = '{"detail":[{"loc":["body","messages"],"msg":"Field required","type":"missing"}]}'


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    up = RawUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(raw: RawUpstream) -> Iterator[RunningGateway]:
    cfg = basic_config(raw.url, models={"gpt-4o-mini": {"backend": "up"}})  # no glob: no model-list call
    with RunningGateway(cfg) as g:
        yield g


def chat(gw: RunningGateway) -> httpx.Response:
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    return httpx.post(gw.base_url + "/chat/completions", json=CHAT, headers=headers, timeout=10)


def test_an_openai_error_with_members_of_its_own_reaches_the_client_byte_for_byte(
    raw: RawUpstream, gw: RunningGateway
) -> None:
    body = (
        b'{\n  "error": {"message": "bad temp", "type": "invalid_request_error", "param": "temperature",'
        b' "code": "invalid_value", "x_extra": 1}, "x_top": true\n}'
    )
    raw.reply = error_answer(400, body)
    r = chat(gw)
    assert (r.status_code, r.content) == (400, body)


def test_a_fastapi_detail_error_is_an_openai_error_saying_the_document_as_json(
    raw: RawUpstream, gw: RunningGateway
) -> None:
    raw.reply = error_answer(422, DETAIL)
    r = chat(gw)
    assert r.status_code == 422
    err = openai_error(r)
    assert err["message"] == f"upstream returned HTTP 422: {DETAIL_JSON}"
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_422")


def test_a_fastapi_detail_error_reaches_a_messages_client_in_anthropics_shape_as_json(
    raw: RawUpstream, gw: RunningGateway
) -> None:
    raw.reply = error_answer(422, DETAIL)
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    r = httpx.post(gw.url + "/v1/messages", json=MESSAGES, headers=headers, timeout=10)
    assert r.status_code == 422
    assert orjson.loads(r.content) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": f"upstream returned HTTP 422: {DETAIL_JSON}"},
    }


def test_an_upstream_429_keeps_its_retry_after_ms_with_its_retry_after(
    raw: RawUpstream, gw: RunningGateway
) -> None:
    body = b'{"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}'
    raw.reply = error_answer(429, body, ((b"retry-after", b"2"), (b"retry-after-ms", b"1500")))
    r = chat(gw)
    assert r.status_code == 429
    assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("2", "1500")


def test_an_upstream_5xx_detail_is_a_502_saying_the_document_as_json(
    raw: RawUpstream, gw: RunningGateway
) -> None:
    raw.reply = error_answer(500, DETAIL)
    r = chat(gw)
    assert r.status_code == 502
    err = openai_error(r)
    assert (err["message"], err["code"]) == (DETAIL_JSON, "upstream_server_error")
