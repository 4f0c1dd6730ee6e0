"""The upstream's answer headers a client gets through a running gateway, read with the official OpenAI SDK: the
provider's request id as ``x-pointsman-upstream-request-id`` (the answer's ``x-request-id`` stays the
gateway's own, on one line), its ``x-ratelimit-*`` headers and ``openai-processing-ms`` — on answers, streams and
errors, from the attempt that answered — and nothing else of the upstream's head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.raw_http import RawUpstream, answer
from tests.gateway_runner import RunningGateway

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
LIMITS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-limit-tokens": "10000000",
    "x-ratelimit-remaining-tokens": "9999990",
    "x-ratelimit-reset-tokens": "0s",
    "openai-processing-ms": "7",
}
"""What the fake OpenAI API sends on every answer (``tests.fakes.openai_errors.common_headers``)."""
UPSTREAM_ID = "x-pointsman-upstream-request-id"


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="primary").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def up2() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="secondary").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    fake = RawUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(up: FakeOpenAI, up2: FakeOpenAI, raw: RawUpstream) -> Iterator[RunningGateway]:
    """``gpt-4o-mini`` and ``fake-*`` on ``up``; ``raw-model`` on the raw upstream; rule ``falls-back``: a
    target answering 500 on ``up``, then ``second`` on ``up2``."""
    cfg: dict[str, Any] = basic_config(up.url)
    cfg["backends"]["up2"] = {"type": "openai", "base_url": up2.url}
    cfg["backends"]["raw"] = {"type": "openai", "base_url": raw.url}
    cfg["models"].update(
        {
            "failing": {"backend": "up", "upstream_model": "fake-fail_500"},
            "second": {"backend": "up2", "upstream_model": "gpt-4o-mini"},
            "raw-model": {"backend": "raw"},
            "falls-back": {"backend": "up"},
        }
    )
    cfg["routes"] = [
        {
            "name": "falls-back",
            "match": {"model": "falls-back"},
            "targets": [{"model": "failing"}],
            "fallbacks": ["second"],
        }
    ]
    cfg["routing"] = {"breaker": {"consecutive_failures": 10_000, "min_requests": 10_000}}
    with RunningGateway(cfg) as g:
        yield g


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def test_an_answer_carries_the_upstreams_request_id_beside_the_gateways_own(
    client: openai.OpenAI, up: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, extra_headers={"x-request-id": "mine-1"}
    )
    assert raw.headers[UPSTREAM_ID] == up.answered_ids[-1]
    assert (raw.headers.get_list("x-request-id"), raw.parse()._request_id) == (["mine-1"], "mine-1")


def test_an_answer_carries_the_upstreams_rate_limits_and_processing_time(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert {k: raw.headers.get(k) for k in LIMITS} == LIMITS


def test_a_stream_carries_the_upstreams_request_id_and_rate_limits(
    client: openai.OpenAI, up: FakeOpenAI
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MSG, stream=True
    ) as r:
        headers = r.headers
        assert list(r.iter_lines())
    assert {k: headers.get(k) for k in (UPSTREAM_ID, *LIMITS)} == {UPSTREAM_ID: up.answered_ids[-1], **LIMITS}


def test_an_upstream_4xx_carries_the_upstreams_request_id_and_rate_limits(
    client: openai.OpenAI, up: FakeOpenAI
) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="fake-fail_404", messages=MSG)
    headers = info.value.response.headers
    assert {k: headers.get(k) for k in (UPSTREAM_ID, *LIMITS)} == {UPSTREAM_ID: up.answered_ids[-1], **LIMITS}


def test_an_upstream_5xx_carries_the_upstreams_request_id_on_its_502(
    client: openai.OpenAI, up: FakeOpenAI
) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fake-fail_500", messages=MSG)
    assert info.value.status_code == 502
    assert info.value.response.headers[UPSTREAM_ID] == up.answered_ids[-1]


def test_a_fallbacks_answer_carries_the_headers_of_the_upstream_that_answered(
    client: openai.OpenAI, up: FakeOpenAI, up2: FakeOpenAI
) -> None:
    failed_before = len(up.answered_ids)
    raw = client.chat.completions.with_raw_response.create(model="falls-back", messages=MSG)
    assert len(up.answered_ids) == failed_before + 1  # the target answered 500 first
    assert (raw.headers["x-pointsman-backend"], raw.headers[UPSTREAM_ID]) == ("up2", up2.answered_ids[-1])


def test_only_the_listed_upstream_headers_reach_the_client_each_once(
    client: openai.OpenAI, raw: RawUpstream
) -> None:
    sent = (
        (b"x-request-id", b"req_first"),
        (b"x-request-id", b"req_second"),
        (b"request-id", b"req_anthropic_style"),
        (b"x-ratelimit-remaining-requests", b"5"),
        (b"x-ratelimit-remaining-requests", b"4"),
        (b"set-cookie", b"session=upstream"),
        (b"openai-organization", b"org-of-the-gateway"),
        (b"cf-ray", b"8a1b2c3d4e5f6789-AMS"),
        (b"x-pointsman-backend", b"spoofed"),
        (b"x-pointsman-upstream-request-id", b"spoofed"),
        (b"x-pointsman-cost-usd", b"0"),
    )
    raw.reply = answer(headers=sent)
    r = client.chat.completions.with_raw_response.create(
        model="raw-model", messages=MSG, extra_headers={"x-request-id": "mine-2"}
    )
    names = sorted({k.decode() for k, _ in sent})
    assert {k: r.headers.get_list(k) for k in names if k in r.headers} == {
        "request-id": ["req_anthropic_style"],
        "x-pointsman-backend": ["raw"],
        UPSTREAM_ID: ["req_first"],
        "x-ratelimit-remaining-requests": ["5"],
        "x-request-id": ["mine-2"],
    }
