"""Request log lines: one per request, structured, failures and fallbacks at warning with their reason."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from accounting.export.logs import LOGGER
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.observe.client import chat


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def wait(self, n: int, timeout_s: float = 5.0) -> list[logging.LogRecord]:
        end = time.time() + timeout_s
        while len(self.records) < n and time.time() < end:
            time.sleep(0.02)
        assert len(self.records) >= n, f"{len(self.records)} lines"
        return self.records


@pytest.fixture
def lines() -> Iterator[Lines]:
    h = Lines()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(h)
    yield h
    logger.removeHandler(h)


def logged_config(upstream: FakeOpenAI, **logs: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = basic_config(upstream.url)
    cfg["backends"]["dead"] = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 1}
    cfg["models"]["dead-model"] = {"backend": "dead"}
    cfg["routes"] = [
        {
            "name": "fallback",
            "match": {"model": "dead-model"},
            "targets": [{"model": "dead-model"}],
            "fallbacks": ["gpt-4o-mini"],
        },
    ]
    cfg["observability"] = {"logs": {"flush_interval_s": 0.02, **logs}}
    return cfg


def test_a_successful_request_is_one_json_line_at_info_without_content_or_secrets(
    upstream: FakeOpenAI, lines: Lines
) -> None:
    with RunningGateway(logged_config(upstream)) as gw:
        r = chat(gw)
        (rec,) = lines.wait(1)
    assert rec.levelno == logging.INFO
    line = orjson.loads(rec.getMessage())
    assert line == {
        "ts": line["ts"],
        "event": "request",
        "request_id": r.headers["x-request-id"],
        "key": "app",
        "team": "search",
        "task": None,
        "route": "default",
        "endpoint": "chat/completions",
        "stream": False,
        "requested_model": "gpt-4o-mini",
        "backend": "up",
        "model": "gpt-4o-mini",
        "status": 200,
        "outcome": "ok",
        "latency_ms": line["latency_ms"],
        "input_tokens": 11,
        "output_tokens": 7,
        "cost_usd": r.headers["x-pointsman-cost-usd"],
    }
    assert line["latency_ms"] > 0 and line["ts"].endswith("Z")
    text = rec.getMessage()
    assert "secret prompt" not in text and CLIENT_KEY not in text and "sk-upstream-secret" not in text


def test_an_upstream_failure_is_a_warning_with_its_reason(upstream: FakeOpenAI, lines: Lines) -> None:
    with RunningGateway(logged_config(upstream)) as gw:
        assert chat(gw, "fake-fail_500").status_code >= 500
        (rec,) = lines.wait(1)
    assert rec.levelno == logging.WARNING
    line = orjson.loads(rec.getMessage())
    assert line["outcome"] == "upstream_error" and line["reason"] == "http_5xx"


def test_a_fallback_is_a_warning_naming_the_failed_backend(upstream: FakeOpenAI, lines: Lines) -> None:
    with RunningGateway(logged_config(upstream)) as gw:
        assert chat(gw, "dead-model").status_code == 200
        (rec,) = lines.wait(1)
    assert rec.levelno == logging.WARNING
    line = orjson.loads(rec.getMessage())
    assert line["outcome"] == "ok" and line["fallbacks"] == 1
    assert line["failed_attempts"] == [{"backend": "dead", "reason": "connect"}]


def test_success_sampling_zero_keeps_failures_only(upstream: FakeOpenAI, lines: Lines) -> None:
    with RunningGateway(logged_config(upstream, success_sample_rate=0.0)) as gw:
        for _ in range(3):
            assert chat(gw).status_code == 200
        chat(gw, "fake-fail_500")
        (rec,) = lines.wait(1)
        time.sleep(0.2)
    assert len(lines.records) == 1 and rec.levelno == logging.WARNING


def test_level_warning_drops_successes(upstream: FakeOpenAI, lines: Lines) -> None:
    with RunningGateway(logged_config(upstream, level="warning")) as gw:
        assert chat(gw).status_code == 200
        chat(gw, "fake-fail_500")
        lines.wait(1)
        time.sleep(0.2)
    assert [r.levelno for r in lines.records] == [logging.WARNING]


def test_text_format_is_key_value_pairs(upstream: FakeOpenAI, lines: Lines) -> None:
    with RunningGateway(logged_config(upstream, format="text")) as gw:
        r = chat(gw)
        (rec,) = lines.wait(1)
    msg = rec.getMessage()
    assert f"request_id={r.headers['x-request-id']}" in msg
    assert "route=default" in msg and "status=200" in msg and "outcome=ok" in msg


def test_a_request_with_a_bad_key_is_a_warning_line_without_the_secret(
    upstream: FakeOpenAI, lines: Lines
) -> None:
    with RunningGateway(logged_config(upstream)) as gw:
        r = chat(gw, authorization="Bearer sk-wrong-secret-123")
        assert r.status_code == 401
        (rec,) = lines.wait(1)
    assert rec.levelno == logging.WARNING
    line = orjson.loads(rec.getMessage())
    assert line["request_id"] == r.headers["x-request-id"]
    assert (line["status"], line["outcome"], line["reason"]) == (401, "client_error", "invalid_api_key")
    assert line["key"] is None and line["route"] is None and line["backend"] is None
    assert "sk-wrong-secret" not in rec.getMessage()


def test_a_malformed_body_is_a_warning_line_naming_the_key(upstream: FakeOpenAI, lines: Lines) -> None:
    with RunningGateway(logged_config(upstream)) as gw:
        r = httpx.post(
            gw.base_url + "/chat/completions",
            content=b'{"model": "gpt-4o-mini", "messages": [',
            headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
            timeout=10,
        )
        assert r.status_code == 400
        (rec,) = lines.wait(1)
    line = orjson.loads(rec.getMessage())
    assert (line["key"], line["status"], line["outcome"]) == ("app", 400, "client_error")
    assert line["reason"] == r.json()["error"]["code"]
