"""An upstream error body that is not JSON — the HTML page of a proxy in front of the provider, a plain-text
error — as the client gets it through a running gateway, read with the official SDKs: its status and an excerpt
of what it says in the message (one line, its title first, control characters out, at most 300 characters), and
the backend's own credentials never, wherever the upstream echoes them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.raw_http import RawUpstream, error_answer
from tests.gateway_runner import RunningGateway

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
SECRET = "sk-upstream-secret"
"""The backend's ``api_key`` (``basic_config``)."""
HEADER_SECRET = "tenant-token-0123456789"
HTML = b"text/html"
NGINX_413 = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
NGINX_502 = NGINX_413.replace(b"413 Request Entity Too Large", b"502 Bad Gateway")
RATE_LIMITED_PAGE = (
    b"<!DOCTYPE html><html><head><title>Access denied | api.example.com used Cloudflare to restrict access</title>"
    b'<style>body{font-family:sans-serif}</style><script>window._cf="<p>not text</p>";</script></head>'
    b"<body><!-- a comment <p>not text</p> --><h1>Error 1015</h1><h2>You are being rate limited</h2>"
    b"<p>Cloudflare Ray ID: <strong>8a1b2c3d4e5f6789</strong> &bull; Performance &amp; security by Cloudflare</p>"
    b"</body></html>"
)


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    up = RawUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gw(raw: RawUpstream) -> Iterator[RunningGateway]:
    cfg: dict[str, Any] = basic_config(
        raw.url, models={"gpt-4o-mini": {"backend": "up"}}
    )  # no glob: no model-list call
    cfg["backends"]["up"]["headers"] = {"x-tenant-token": HEADER_SECRET}
    with RunningGateway(cfg) as g:
        yield g


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def refusal(client: openai.OpenAI) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    return info.value


def message(err: openai.APIStatusError) -> str:
    assert isinstance(err.body, dict), err.body
    return str(err.body["message"])


def test_an_html_4xx_page_is_said_in_the_message(client: openai.OpenAI, raw: RawUpstream) -> None:
    raw.reply = error_answer(413, NGINX_413, content_type=HTML)
    err = refusal(client)
    assert (err.status_code, message(err)) == (
        413,
        "upstream returned HTTP 413: 413 Request Entity Too Large nginx",
    )


def test_a_pages_title_comes_before_its_text_without_markup_scripts_or_styles(
    client: openai.OpenAI, raw: RawUpstream
) -> None:
    raw.reply = error_answer(429, RATE_LIMITED_PAGE, content_type=b"text/html; charset=UTF-8")
    assert message(refusal(client)) == (
        "upstream returned HTTP 429: Access denied | api.example.com used Cloudflare to restrict access — "
        "Error 1015 You are being rate limited Cloudflare Ray ID: 8a1b2c3d4e5f6789 • Performance & security by "
        "Cloudflare"
    )


def test_a_plain_text_4xx_body_is_said_in_the_message(client: openai.OpenAI, raw: RawUpstream) -> None:
    raw.reply = error_answer(400, b"Request Header Or Cookie Too Large\n", content_type=b"text/plain")
    assert message(refusal(client)) == "upstream returned HTTP 400: Request Header Or Cookie Too Large"


def test_an_excerpt_is_one_line_without_control_or_invisible_characters(
    client: openai.OpenAI, raw: RawUpstream
) -> None:
    body = "\ufeffBlocked\tby\r\n\r\n  policy \x1b[31mWAF-7\x1b[0m\x00 for\u202e you\u200b.\n".encode()
    raw.reply = error_answer(400, body, content_type=b"text/plain")
    assert message(refusal(client)) == "upstream returned HTTP 400: Blocked by policy [31mWAF-7 [0m for you."


def test_an_excerpt_is_cut_at_300_characters(client: openai.OpenAI, raw: RawUpstream) -> None:
    raw.reply = error_answer(400, b"0123456789 " * 1000, content_type=b"text/plain")
    said = message(refusal(client)).removeprefix("upstream returned HTTP 400: ")
    assert (len(said), said[:22], said[-1]) == (300, "0123456789 0123456789 ", "…")


def test_an_html_5xx_page_is_said_in_the_502s_message(client: openai.OpenAI, raw: RawUpstream) -> None:
    raw.reply = error_answer(502, NGINX_502, content_type=HTML)
    err = refusal(client)
    assert (err.status_code, message(err)) == (
        502,
        "The upstream backend `up` failed (HTTP 502): 502 Bad Gateway nginx",
    )


def test_the_backends_api_key_echoed_in_an_error_page_is_masked(
    client: openai.OpenAI, raw: RawUpstream
) -> None:
    body = f"Invalid request header: Authorization: Bearer {SECRET}".encode()
    raw.reply = error_answer(400, body, content_type=b"text/plain")
    assert (
        message(refusal(client))
        == "upstream returned HTTP 400: Invalid request header: Authorization: Bearer ***"
    )


def test_the_backends_header_credential_echoed_in_an_error_page_is_masked(
    client: openai.OpenAI, raw: RawUpstream
) -> None:
    raw.reply = error_answer(400, f"<p>x-tenant-token: {HEADER_SECRET}</p>".encode(), content_type=HTML)
    assert message(refusal(client)) == "upstream returned HTTP 400: x-tenant-token: ***"


def test_the_backends_api_key_echoed_in_an_error_document_passed_through_is_masked(
    client: openai.OpenAI, raw: RawUpstream
) -> None:
    doc = {
        "error": {
            "message": f"header echo: Bearer {SECRET}",
            "type": "invalid_request_error",
            "x_seen": SECRET,
        }
    }
    raw.reply = error_answer(400, orjson.dumps(doc))
    err = refusal(client)
    assert err.response.content == orjson.dumps(
        {"error": {"message": "header echo: Bearer ***", "type": "invalid_request_error", "x_seen": "***"}}
    )


def test_a_messages_client_gets_the_pages_excerpt_in_anthropics_shape(
    gw: RunningGateway, raw: RawUpstream
) -> None:
    raw.reply = error_answer(413, NGINX_413, content_type=HTML)
    with anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0) as c:
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(
                model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            )
    assert (info.value.status_code, info.value.body) == (
        413,
        {
            "type": "error",
            "error": {
                "type": "request_too_large",
                "message": "upstream returned HTTP 413: 413 Request Entity Too Large nginx",
            },
        },
    )
