"""vLLM /metrics parsing and the throughput window arithmetic (pure, no I/O)."""

from __future__ import annotations

import pytest

from serving.vllm.metrics import (
    GENERATION_TOKENS,
    PROMPT_TOKENS,
    RUNNING,
    WAITING,
    CounterWindow,
    parse_samples,
    snapshot,
    total,
)

# shaped like a real vLLM 0.3x /metrics (two engines, a LoRA info gauge, histograms, created gauges)
TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="tiny"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 2.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="tiny",reason="capacity"} 7.0
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 1234.0
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7954590803e+09
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} 5000.0
vllm:generation_tokens_total{engine="1",model_name="other"} 1e3
vllm:lora_requests_info{max_lora="2",running_lora_adapters="tiny-lora",waiting_lora_adapters=""} 1.79e+09
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 12.0
weird_line_without_value
vllm:generation_tokens_total{engine="2",model_name="x\\"y,z"} NaN
"""


def test_parse_samples_picks_wanted_series_and_sums() -> None:
    s = parse_samples(TEXT, (GENERATION_TOKENS, PROMPT_TOKENS, RUNNING, WAITING))
    assert total(s[RUNNING]) == 4.0
    assert total(s[WAITING]) == 2.0  # not the _by_reason series
    assert total(s[PROMPT_TOKENS]) == 1234.0
    assert total(s[GENERATION_TOKENS]) == 6000.0  # NaN skipped
    assert total(s[GENERATION_TOKENS], model_name="tiny") == 5000.0


def test_label_values_with_escapes_and_commas() -> None:
    s = parse_samples('m{a="x\\"y,z",b="\\\\"} 2\nm 3\n', ["m"])
    assert s["m"] == {(("a", 'x"y,z'), ("b", "\\")): 2.0, (): 3.0}


def test_snapshot_reduces_to_what_pointsman_uses() -> None:
    snap = snapshot(TEXT, 10.0)
    assert (snap.generation_tokens, snap.prompt_tokens, snap.running, snap.waiting) == (
        6000.0,
        1234.0,
        4.0,
        2.0,
    )
    assert snap.by_model == {"tiny": 5000.0, "other": 1000.0}


def test_counter_window_rate_and_trimming() -> None:
    w = CounterWindow(window_s=10)
    assert w.rate() is None
    for t in range(31):
        w.observe(float(t), 100.0 * t)  # 100 tokens/s
    inc, span = w.increase()
    assert span == pytest.approx(10.0)
    assert inc == pytest.approx(1000.0)
    assert w.rate() == pytest.approx(100.0)


def test_counter_window_survives_a_server_restart() -> None:
    w = CounterWindow(window_s=100)
    w.observe(0.0, 1000.0)
    w.observe(1.0, 1100.0)  # +100
    w.observe(2.0, 30.0)  # restarted: counts as +30 from zero
    w.observe(3.0, 80.0)  # +50
    assert w.increase() == (180.0, 3.0)


def test_counter_window_gap_restarts_the_run() -> None:
    w = CounterWindow(window_s=100)
    w.observe(0.0, 0.0)
    w.observe(1.0, 10.0)
    w.reset_gap()
    assert w.increase() == (0.0, 0.0)
    w.observe(50.0, 5000.0)  # no increase is counted across the gap
    w.observe(51.0, 5010.0)
    assert w.increase() == (10.0, 1.0)
