"""Every error is OpenAI-shaped with the right status; never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

MSG = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


def assert_openai_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err  # type: ignore[no-any-return]


def post(
    gw: RunningGateway, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> httpx.Response:
    h = {**AUTH, **(headers or {})}
    if raw is not None:
        return httpx.post(
            gw.base_url + "/chat/completions", content=raw, headers={**h, "content-type": "application/json"}
        )
    return httpx.post(gw.base_url + "/chat/completions", json=body, headers=h)


def test_missing_key_is_401(gateway: RunningGateway) -> None:
    r = httpx.post(gateway.base_url + "/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})
    assert assert_openai_error(r, 401)["type"] == "authentication_error"


def test_wrong_key_is_401_through_the_sdk(gateway: RunningGateway) -> None:
    with (
        openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong-key", max_retries=0) as c,
        pytest.raises(openai.AuthenticationError),
    ):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]


def test_wrong_key_is_not_echoed(gateway: RunningGateway) -> None:
    r = post(
        gateway, {"model": "gpt-4o-mini", "messages": MSG}, {"authorization": "Bearer sk-secret-guess-123"}
    )
    assert "sk-secret-guess-123" not in r.text


def test_malformed_json_is_400(gateway: RunningGateway) -> None:
    assert assert_openai_error(post(gateway, None, raw=b'{"model": '), 400)["code"] == "invalid_json"


def test_non_object_body_is_400(gateway: RunningGateway) -> None:
    assert_openai_error(post(gateway, [1, 2]), 400)


def test_missing_messages_is_400(gateway: RunningGateway) -> None:
    assert assert_openai_error(post(gateway, {"model": "gpt-4o-mini"}), 400)["param"] == "messages"


def test_missing_model_is_400(gateway: RunningGateway) -> None:
    assert assert_openai_error(post(gateway, {"messages": MSG}), 400)["param"] == "model"


def test_wrong_type_stream_is_400(gateway: RunningGateway) -> None:
    assert_openai_error(post(gateway, {"model": "gpt-4o-mini", "messages": MSG, "stream": "yes"}), 400)


def test_negative_max_tokens_is_400(gateway: RunningGateway) -> None:
    assert_openai_error(post(gateway, {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": -1}), 400)


def test_unknown_model_is_404(gateway: RunningGateway) -> None:
    assert (
        assert_openai_error(post(gateway, {"model": "nope", "messages": MSG}), 404)["code"]
        == "model_not_found"
    )


def test_body_over_limit_is_413(gateway: RunningGateway) -> None:
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 100_000}]}
    assert_openai_error(post(gateway, big), 413)


def test_upstream_unreachable_is_502(gateway: RunningGateway) -> None:
    assert (
        assert_openai_error(post(gateway, {"model": "dead-model", "messages": MSG}), 502)["code"]
        == "upstream_unreachable"
    )


def test_upstream_timeout_is_504(gateway: RunningGateway) -> None:
    assert (
        assert_openai_error(post(gateway, {"model": "slow-hang", "messages": MSG}), 504)["code"]
        == "upstream_timeout"
    )


def test_upstream_4xx_is_passed_through_with_its_body(gateway: RunningGateway) -> None:
    err = assert_openai_error(post(gateway, {"model": "fake-fail_400", "messages": MSG}), 400)
    assert err["message"] == "fake 400"


def test_upstream_429_keeps_retry_after(gateway: RunningGateway) -> None:
    r = post(gateway, {"model": "fake-fail_429", "messages": MSG})
    assert_openai_error(r, 429)
    assert r.headers["retry-after"] == "1"


def test_upstream_5xx_becomes_502(gateway: RunningGateway) -> None:
    assert_openai_error(post(gateway, {"model": "fake-fail_500", "messages": MSG}), 502)


def test_upstream_invalid_json_is_502(gateway: RunningGateway) -> None:
    assert (
        assert_openai_error(post(gateway, {"model": "fake-bad_json", "messages": MSG}), 502)["code"]
        == "upstream_protocol"
    )


def test_upstream_wrong_content_type_is_502(gateway: RunningGateway) -> None:
    assert_openai_error(post(gateway, {"model": "fake-wrong_ctype", "messages": MSG}), 502)


def test_unknown_path_is_openai_shaped_404(gateway: RunningGateway) -> None:
    assert_openai_error(httpx.get(gateway.url + "/v1/nothing"), 404)


def test_get_on_inference_path_is_405(gateway: RunningGateway) -> None:
    assert_openai_error(httpx.get(gateway.base_url + "/chat/completions", headers=AUTH), 405)


def test_request_id_is_echoed(gateway: RunningGateway) -> None:
    r = post(gateway, {"model": "gpt-4o-mini", "messages": MSG}, {"x-request-id": "req-42"})
    assert r.headers["x-request-id"] == "req-42"


def test_request_id_is_generated_when_absent(gateway: RunningGateway) -> None:
    assert len(post(gateway, {"model": "gpt-4o-mini", "messages": MSG}).headers["x-request-id"]) == 32


def test_unsafe_request_id_is_replaced(gateway: RunningGateway) -> None:
    r = post(
        gateway, {"model": "gpt-4o-mini", "messages": MSG}, {"x-request-id": "<script>alert(1)</script>"}
    )
    assert "<" not in r.headers["x-request-id"]


def test_error_responses_carry_request_id(gateway: RunningGateway) -> None:
    r = post(gateway, {"model": "nope", "messages": MSG}, {"x-request-id": "req-err"})
    assert r.headers["x-request-id"] == "req-err"


def test_upstream_secret_never_appears_in_errors(gateway: RunningGateway, upstream: FakeOpenAI) -> None:
    for model in ("dead-model", "fake-fail_500", "fake-bad_json", "nope"):
        assert "sk-upstream-secret" not in post(gateway, {"model": model, "messages": MSG}).text
