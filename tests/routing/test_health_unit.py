"""The circuit breaker's state machine, on a fake clock (no sockets): what opens it, what closes it."""

from __future__ import annotations

from routing.config import RoutingSettings
from routing.health import CLOSED, FAIL, HALF_OPEN, NEUTRAL, OK, OPEN, HealthTracker
from serving.config import OpenAIBackendConfig
from serving.http_backend import OpenAIHTTPBackend
from serving.registry import BackendRegistry

URL = "http://127.0.0.1:9/v1"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def tracker(**breaker: object) -> tuple[HealthTracker, OpenAIHTTPBackend, Clock]:
    reg = BackendRegistry()
    backend = OpenAIHTTPBackend("b", OpenAIBackendConfig(type="openai", base_url=URL))
    reg.backends["b"] = backend
    clock = Clock()
    settings = RoutingSettings.model_validate(
        {"breaker": {"consecutive_failures": 3, "open_s": 10, **breaker}}
    )
    return HealthTracker(settings, reg, clock), backend, clock


def test_consecutive_failures_open_the_breaker() -> None:
    h, b, _ = tracker()
    for _ in range(3):
        h.record("b", URL, FAIL)
    assert h.state_of("b", URL) == OPEN
    assert h.plan(b) is None and not h.is_up("b")


def test_a_success_resets_the_failure_run() -> None:
    h, _, _ = tracker()
    for kind in (FAIL, FAIL, OK, FAIL, FAIL):
        h.record("b", URL, kind)
    assert h.state_of("b", URL) == CLOSED


def test_rate_limits_and_overload_say_nothing_about_health() -> None:
    h, _, _ = tracker()
    for _ in range(10):
        h.record("b", URL, NEUTRAL)
    assert h.state_of("b", URL) == CLOSED


def test_after_open_s_one_probe_goes_through_and_success_closes() -> None:
    h, b, clock = tracker()
    for _ in range(3):
        h.record("b", URL, FAIL)
    clock.t += 10
    assert h.is_up("b")
    probe = h.plan(b)
    assert probe is not None and probe.probe == URL
    assert h.state_of("b", URL) == HALF_OPEN
    assert h.plan(b) is None  # a second caller does not get a probe
    h.record("b", URL, OK, probe)
    assert h.state_of("b", URL) == CLOSED and h.plan(b) is not None


def test_failed_probe_reopens_for_twice_as_long() -> None:
    h, b, clock = tracker()
    for _ in range(3):
        h.record("b", URL, FAIL)
    clock.t += 10
    probe = h.plan(b)
    h.record("b", URL, FAIL, probe)
    assert h.state_of("b", URL) == OPEN
    clock.t += 19
    assert h.plan(b) is None
    clock.t += 1
    assert h.plan(b) is not None


def test_released_probe_lets_the_next_caller_probe() -> None:
    h, b, clock = tracker()
    for _ in range(3):
        h.record("b", URL, FAIL)
    clock.t += 10
    probe = h.plan(b)
    assert probe is not None
    h.release("b", probe)
    assert h.plan(b) is not None


def test_error_rate_over_the_window_opens_without_a_failure_run() -> None:
    h, _, _ = tracker(consecutive_failures=50, min_requests=10, error_rate=0.5)
    for i in range(10):
        h.record("b", URL, FAIL if i % 2 else OK)
    assert h.state_of("b", URL) == OPEN


def test_old_failures_leave_the_window() -> None:
    h, _, clock = tracker(consecutive_failures=50, min_requests=10, error_rate=0.5, window_s=10)
    for _ in range(4):
        h.record("b", URL, FAIL)
        h.record("b", URL, OK)
    clock.t += 11  # those 8 calls are now outside the window
    for _ in range(4):
        h.record("b", URL, OK)
    for _ in range(6):
        h.record("b", URL, FAIL if _ % 2 else OK)
    assert h.state_of("b", URL) == CLOSED  # 3 failures in the 10 calls of the window


def test_latency_ewma_moves_toward_new_samples() -> None:
    h, _, _ = tracker()
    h.observe_latency("m", 1.0)
    h.observe_latency("m", 0.0)
    assert h.latency["m"] == 0.7
