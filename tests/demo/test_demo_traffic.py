"""The demo's traffic generator (the official OpenAI SDK) against a slow fake OpenAI API over real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from gateway.cli.demo_traffic import Traffic
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture
def slow_api() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(delay=0.4).start()
    yield fake
    fake.stop()


def run_for(traffic: Traffic, seconds: float) -> float:
    """Run ``traffic`` for ``seconds``; returns the wall-clock time it was told to stop (as the fake records)."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    told = time.time() + seconds
    traffic.run(stop)
    timer.cancel()
    return told


def test_ticks_with_every_sender_busy_are_skipped_not_queued(slow_api: FakeOpenAI) -> None:
    traffic = Traffic(slow_api.url, "sk-demo", rps=40, workers=2)
    run_for(traffic, 1.0)
    c = traffic.counts
    assert c.sent <= 2 * 4  # two senders, each at most ~3 answers of 0.4 s in a second
    assert c.skipped >= 20
    assert c.failed == 0 and c.ok == c.sent == len(slow_api.requests)


def test_nothing_is_sent_after_the_traffic_is_told_to_stop(slow_api: FakeOpenAI) -> None:
    traffic = Traffic(slow_api.url, "sk-demo", rps=40, workers=2)
    told = run_for(traffic, 1.0)
    assert slow_api.requests
    assert max(seen.t for seen in slow_api.requests) < told + 0.05


def test_the_default_senders_keep_up_with_the_rate_at_the_simulated_latency() -> None:
    assert Traffic("http://127.0.0.1:9/v1", "sk-demo", rps=12).workers >= 12
    assert Traffic("http://127.0.0.1:9/v1", "sk-demo", rps=1).workers == 4
