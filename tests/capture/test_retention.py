"""Retention through a running gateway: traces and their feedback are deleted after retain_days; and the store's
purge, a chunk of rows to a transaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from accounting.capture.store import CaptureStore, trace_row
from accounting.capture.trace import Trace
from tests.capture.conftest import SUPPORT, Admin, ask, capture_config, feedback
from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

SHORT = {"x-pointsman-task": "short"}
SHORT_DAYS = 1 / 86400  # one second


@pytest.fixture
def retention_gateway(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    """Route ``short`` keeps traces one second, ``support`` thirty days; the sweep runs on demand only."""
    cfg = capture_config(upstream.url, tmp_path)
    cfg["routes"].insert(
        0, {"name": "short", "match": {"tags": {"task": "short"}}, "capture": {"retain_days": SHORT_DAYS}}
    )
    cfg["capture"]["retention_interval_s"] = 3600
    with RunningGateway(cfg) as gw:
        yield gw


@pytest.fixture
def radmin(retention_gateway: RunningGateway) -> Iterator[Admin]:
    a = Admin(retention_gateway)
    a.approve()
    yield a
    a.close()


@pytest.fixture
def rclient(retention_gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=retention_gateway.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def wait_past_short_retention() -> None:
    time.sleep(SHORT_DAYS * 86400 + 0.2)


def test_purge_deletes_traces_older_than_retain_days(rclient: openai.OpenAI, radmin: Admin) -> None:
    ask(rclient, headers=SHORT)
    radmin.flush()
    wait_past_short_retention()
    deleted = radmin.http.post("/admin/capture/purge").json()["deleted"]
    assert deleted["traces"] == 1
    assert radmin.traces(route="short") == []


def test_purge_keeps_traces_within_retain_days(rclient: openai.OpenAI, radmin: Admin) -> None:
    rid = ask(rclient, headers=SUPPORT)
    radmin.flush()
    wait_past_short_retention()
    radmin.http.post("/admin/capture/purge")
    assert [t["request_id"] for t in radmin.traces()] == [rid]


def test_purge_deletes_the_feedback_of_expired_traces(
    rclient: openai.OpenAI, radmin: Admin, retention_gateway: RunningGateway
) -> None:
    rid = ask(rclient, headers=SHORT)
    radmin.flush()
    assert (
        feedback(retention_gateway, {"request_id": rid, "metric": "helpful", "value": True}).status_code
        == 200
    )
    wait_past_short_retention()
    deleted = radmin.http.post("/admin/capture/purge").json()["deleted"]
    assert deleted == {"traces": 1, "feedback": 1}
    assert radmin.get("/admin/feedback", request_id=rid).json()["data"] == []


def test_retention_runs_in_the_background(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = capture_config(upstream.url, tmp_path)
    cfg["routes"][0]["capture"]["retain_days"] = SHORT_DAYS
    cfg["capture"]["retention_interval_s"] = 0.2
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        a = Admin(gw)
        a.approve()
        ask(c)
        a.flush()
        deadline = time.time() + 10
        while a.get("/admin/capture/stats").json()["stored"]["traces"] and time.time() < deadline:
            time.sleep(0.1)
        remaining = a.get("/admin/capture/stats").json()["stored"]["traces"]
        a.close()
    assert remaining == 0


def test_a_purge_larger_than_a_chunk_deletes_every_expired_trace_and_keeps_the_rest(tmp_path: Path) -> None:
    store = CaptureStore(str(tmp_path / "capture.sqlite3"))
    store.open()

    def trace(i: int, expires_at: float) -> Trace:
        return Trace(
            f"req-{i}",
            1.0,
            expires_at,
            "app",
            "search",
            None,
            "r",
            "chat/completions",
            "m",
            "m",
            "b",
            False,
            200,
            {"messages": []},
            [],
        )

    store.write_traces([trace_row(trace(i, 10.0 if i < 11 else 1e12)) for i in range(14)])
    assert store.purge_expired(now=100.0, chunk=4) == {"traces": 11, "feedback": 0}
    assert store.count_traces() == 3
