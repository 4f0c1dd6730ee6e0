"""Shadow testing end to end with the real vLLM as the candidate: a fake frontier upstream serves the route, the
tiny model's LoRA adapter (served by vLLM) is shadowed on every request, and the report compares them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

if TYPE_CHECKING:
    from tests.vllm.conftest import VLLMServer

pytestmark = pytest.mark.vllm

ADMIN = "sk-shadow-admin-0001"
KEY = "sk-shadow-client-0001"
N_UNARY, N_STREAM = 12, 8
MESSAGES: list[Any] = [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture(scope="module")
def frontier() -> Iterator[FakeOpenAI]:
    # 40 ms to answer: a remote frontier API; the CPU-hosted candidate answers in a similar time
    fake = FakeOpenAI(name="frontier", delay=0.04, content="Your order ships tomorrow.").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(vllm_server: VLLMServer, frontier: FakeOpenAI) -> Iterator[RunningGateway]:
    cfg = {
        "admin_key": ADMIN,
        "backends": {
            "frontier": {"type": "openai", "base_url": frontier.url},
            "vllm": {
                "type": "vllm",
                "endpoints": [vllm_server.api_base],
                "health_interval_s": 0.5,
                "gpu_hour_usd": "2.00",
                "throughput_min_tokens": 50,
            },
        },
        "models": {
            "gpt-4o": {"backend": "frontier"},
            "support-v1": {"backend": "vllm", "adapter": vllm_server.lora},
        },
        "routes": [
            {
                "name": "support",
                "match": {"tags": {"task": "support"}},
                "targets": [{"model": "gpt-4o"}],
                "shadow": {
                    "model": "support-v1",
                    "sample_rate": 1.0,
                    "max_concurrency": 4,
                    "queue_size": 64,
                    "compare": ["exact", "token_f1"],
                },
                "promote_when": {
                    "min_pairs": 10,
                    "scores": {"token_f1": {"min": 0.5}},
                    "max_candidate_error_rate": 0.1,
                },
            }
        ],
        "keys": [{"name": "app", "key": KEY, "team": "support"}],
        # until a throughput is measured, the adapter is priced from a configured one (then measurement wins)
        "accounting": {
            "pricing": {"support-v1": {"throughput_tokens_per_s": 1000}},
            "ledger": {"flush_interval_s": 0.1},
        },
    }
    with RunningGateway(cfg) as gw:
        yield gw


def test_shadow_report_with_real_vllm_candidate(
    gateway: RunningGateway, frontier: FakeOpenAI, vllm_server: VLLMServer
) -> None:
    rids: list[str] = []
    with openai.OpenAI(
        base_url=gateway.base_url,
        api_key=KEY,
        max_retries=0,
        timeout=60,
        default_headers={"x-pointsman-task": "support"},
    ) as client:
        for i in range(N_UNARY):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=MESSAGES,
                max_tokens=12,
                extra_headers={"x-request-id": f"shadow-u{i}"},
            )
            assert (
                raw.parse().choices[0].message.content == "Your order ships tomorrow."
            )  # the primary answers
            assert raw.headers["x-pointsman-backend"] == "frontier"
            rids.append(f"shadow-u{i}")
        for i in range(N_STREAM):
            with client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                max_tokens=12,
                stream=True,
                extra_headers={"x-request-id": f"shadow-s{i}"},
            ) as st:
                text = "".join(c.choices[0].delta.content or "" for c in st if c.choices)
            assert text == "Your order ships tomorrow."
            rids.append(f"shadow-s{i}")
    assert all(r.path == "/v1/chat/completions" for r in frontier.requests)

    with httpx.Client(
        base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=60
    ) as admin:
        deadline = time.monotonic() + 60
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = admin.get("/admin/shadow/report", params={"route": "support"}).json()
            routes = report.get("routes") or []
            if routes and routes[0]["counts"]["paired"] >= N_UNARY + N_STREAM:
                break
            time.sleep(0.25)
        (route,) = report["routes"]
        print_report(route)
        counts = route["counts"]
        # every sampled request became exactly one pair, and the candidate (real vLLM) answered them all
        assert (counts["sampled"], counts["paired"], counts["quality_pairs"]) == (N_UNARY + N_STREAM,) * 3, (
            counts
        )
        assert (counts["candidate_failed"], counts["primary_failed"], counts["dropped"]) == (0, 0, 0), counts
        assert counts["streamed"] == N_STREAM  # a streamed primary got a streamed shadow

        # one pair per request id, with both sides' tokens, latency and cost; the candidate's tokens are vLLM's
        n_prompt = _tokenize(vllm_server, MESSAGES)
        for rid in rids:
            pair = admin.get(f"/admin/shadow/pairs/{rid}").json()
            cand, prim = pair["candidate"], pair["primary"]
            assert (pair["outcome"], pair["route"], pair["task"]) == ("paired", "support", "support")
            assert (cand["backend"], cand["upstream_model"], cand["status"]) == (
                "vllm",
                vllm_server.lora,
                200,
            )
            assert (prim["backend"], prim["input_tokens"], prim["output_tokens"]) == ("frontier", 11, 7)
            assert cand["input_tokens"] == n_prompt and 0 < cand["output_tokens"] <= 12
            assert Decimal(cand["cost_usd"]) > 0 and Decimal(prim["cost_usd"]) > 0
            assert set(pair["scores"]) == {"exact", "token_f1"}
            if pair["stream"]:
                assert cand["ttft_s"] is not None and prim["ttft_s"] is not None

        # the report: comparators with intervals, latency and TTFT both sides, cost per 1k requests, a verdict
        comps = route["comparators"]
        assert comps["exact"]["n"] == N_UNARY + N_STREAM and comps["exact"]["pass_rate"] == 0.0
        assert len(comps["token_f1"]["ci95"]) == 2
        lat = route["latency"]
        assert lat["total"]["candidate"]["n"] == lat["total"]["primary"]["n"] == N_UNARY + N_STREAM
        assert lat["ttft"]["candidate"]["n"] == N_STREAM and lat["total"]["paired_ratio"]["median"] > 0
        cost = route["cost"]
        assert Decimal(cost["candidate_per_1k_usd"]) > 0 and Decimal(cost["primary_per_1k_usd"]) > 0
        # random weights never reproduce the frontier's sentence: not ready, naming the failing criterion
        verdict = route["verdict"]
        assert verdict["verdict"] == "not_ready" and "score:token_f1" in verdict["failing"], verdict
        html = admin.get("/admin/shadow/report.html", params={"route": "support"})
        assert html.status_code == 200 and "support-v1" in html.text


def _tokenize(server: VLLMServer, messages: list[Any]) -> int:
    r = httpx.post(
        f"{server.base_url}/tokenize", json={"model": server.lora, "messages": messages}, timeout=30
    )
    count: int = r.json()["count"]
    return count


def print_report(route: dict[str, Any]) -> None:
    """The figures the closing note quotes (pytest -s shows them)."""
    keep = ("counts", "comparators", "cost", "verdict")
    print(json.dumps({k: route.get(k) for k in keep}, default=str))
    print(
        json.dumps(
            {
                "latency": {
                    k: {s: route["latency"][k].get(s) for s in ("primary", "candidate")}
                    for k in ("total", "ttft")
                }
            },
            default=str,
        )
    )
