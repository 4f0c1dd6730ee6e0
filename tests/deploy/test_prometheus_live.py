"""Every dashboard query against a real Prometheus scraping two real gateway replicas under traffic.

The module starts redis-server, fake upstreams (a frontier API, a failing API, a fake vLLM with vLLM's
/metrics), two ``pointsman serve`` replicas sharing Redis (one with 2 workers), and a real Prometheus
(scrape every second, the project's alert rules loaded). It drives traffic through both replicas:
plain, streamed, a shadowed route with a flaky and slow candidate, an upstream that fails (with and
without a fallback), timeouts, a team over budget, a key over its rate limit, self-hosted models with and
without a price. Then it evaluates every query of every dashboard panel through Prometheus's HTTP API,
with the template variables substituted as Grafana does (All = ``.*``), and asserts each returns data.

Needs prometheus and redis-server (scripts/install_test_tools.sh).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.dashboards import (
    DASHBOARDS,
    DEPLOY,
    PanelQuery,
    all_queries,
    load_dashboard,
    static_values,
    substitute,
    tool,
    variables,
)
from tests.deploy.fake_vllm import FakeVLLM
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import free_port
from tests.gateway_runner import GatewayProcess
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.prometheus, pytest.mark.redis]

ADMIN_KEY = "sk-live-admin-0001"
KEYS = {
    "search": ("sk-live-search-0001", "search", {"task": "chat"}),
    "support": ("sk-live-support-0001", "support", {"task": "summarize"}),
    "batch": ("sk-live-batch-0001", "batch", {"task": "chat"}),
    "limited": ("sk-live-limited-0001", "ops", {"task": "chat"}),
}
TRAFFIC_SECONDS = float(os.environ.get("POINTSMAN_LIVE_TRAFFIC_S", "20"))
RATE_INTERVAL = "1m"
RANGE = "10m"


def pause(seconds: float) -> None:
    """Block this (test) thread; there is no event loop here."""
    threading.Event().wait(seconds)


def gateway_config(
    fr: FakeOpenAI,
    failing: FakeOpenAI,
    vllm: FakeVLLM,
    redis_url: str,
    data_dir: Path,
    judge: FakeOpenAI,
) -> dict[str, Any]:
    return {
        "server": {"data_dir": str(data_dir), "log_level": "warning"},
        "admin_key": ADMIN_KEY,
        "redis": {"url": redis_url, "on_unavailable": "fail_open"},
        "backends": {
            "frontier": {"type": "openai", "base_url": fr.url, "api_key": "sk-upstream-frontier"},
            "failing": {"type": "openai", "base_url": failing.url, "api_key": "sk-upstream-failing"},
            "judging": {"type": "openai", "base_url": judge.url, "api_key": "sk-upstream-judge"},
            "vllm": {"type": "vllm", "endpoints": [vllm.url], "health_interval_s": 1, "gpu_hour_usd": "2.00"},
            "vllm-unpriced": {"type": "vllm", "endpoints": [vllm.url], "health_interval_s": 1},
        },
        "models": {
            "gpt-4o-mini": {"backend": "frontier"},
            "flaky": {"backend": "failing", "upstream_model": "gpt-4o-mini-fail_503"},
            "broken": {"backend": "failing", "upstream_model": "gpt-4o-mini-fail_500"},
            "judge": {"backend": "judging"},
            "sleepy": {"backend": "frontier", "upstream_model": "gpt-4o-mini-hang"},
            "llama": {"backend": "vllm"},
            "candidate": {"backend": "vllm", "upstream_model": "llama-candidate"},
            "unpriced": {"backend": "vllm-unpriced"},
        },
        "keys": [{"name": n, "key": k, "team": team, "tags": tags} for n, (k, team, tags) in KEYS.items()],
        "routes": [
            {
                "name": "classify",
                "match": {"tags": {"task": "classify"}},
                "targets": [{"model": "gpt-4o-mini"}],
                "shadow": {
                    "model": "candidate",
                    "sample_rate": 1.0,
                    "max_concurrency": 2,
                    "queue_size": 2,  # bursts overflow it: dropped shadows are counted
                    # a judge that always says "tie": consistent, but constant (verdict judge_unreliable)
                    "compare": ["exact", "json_valid", {"type": "llm_judge", "model": "judge"}],
                },
                "promote_when": {"min_pairs": 20, "max_candidate_error_rate": 0.05},
            },
            {"name": "flaky", "match": {"model": "flaky"}, "fallbacks": ["gpt-4o-mini"]},
            {"name": "sleepy", "match": {"model": "sleepy"}, "timeout_s": 0.5, "max_retries": 0},
        ],
        "accounting": {
            "task_allowlist": ["chat", "classify", "summarize"],
            "on_unpriced": "allow",  # budgeted keys reach the unpriced models too: they are served and flagged
            "pricing": {
                "gpt-4o-mini": {"input_per_mtok": "0.15", "output_per_mtok": "0.60"},
                "llama": {"gpu_hour_usd": "2.00", "gpu_count": 1, "throughput_tokens_per_s": 500},
                "candidate": {"input_per_mtok": "0.02", "output_per_mtok": "0.05"},
                "judge": {"input_per_mtok": "0.15", "output_per_mtok": "0.60"},
            },
            "budgets": [
                {"scope": "team", "name": "batch", "daily_usd": "0.00001"},
                {"scope": "team", "name": "search", "daily_usd": "100", "monthly_usd": "1000"},
                {"scope": "key", "name": "support", "monthly_usd": "500"},
            ],
            "rate_limits": [{"key": "limited", "requests_per_min": 5}],
        },
    }


@dataclass
class Stack:
    prom_url: str
    gateways: list[GatewayProcess]
    started: float
    ended: float = 0.0
    sent: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)

    def query(self, expr: str, **params: Any) -> dict[str, Any]:
        r = httpx.post(f"{self.prom_url}/api/v1/query", data={"query": expr, **params}, timeout=30)
        doc: dict[str, Any] = r.json()
        return doc

    def query_range(self, expr: str, start: float, end: float, step: str = "2s") -> dict[str, Any]:
        r = httpx.post(
            f"{self.prom_url}/api/v1/query_range",
            data={"query": expr, "start": start, "end": end, "step": step},
            timeout=30,
        )
        doc: dict[str, Any] = r.json()
        return doc


def start_prometheus(
    tmp: Path, gateways: list[GatewayProcess], vllm: FakeVLLM
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    vllm_target = vllm.url.removeprefix("http://").removesuffix("/v1")
    cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": "pointsman",
                "static_configs": [{"targets": [f"127.0.0.1:{g.port}" for g in gateways]}],
            },
            {
                "job_name": "vllm",
                "static_configs": [{"targets": [vllm_target], "labels": {"backend": "vllm"}}],
            },
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    with open(tmp / "prometheus.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(tmp / 'prometheus.log').read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/-/ready", timeout=0.5).status_code == 200:
                return proc, url
        pause(0.1)
    raise RuntimeError("prometheus did not become ready")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ---------------------------------------------------------------------------------------------- traffic
def chat(
    client: httpx.Client,
    key: str,
    model: str,
    *,
    stream: bool = False,
    task: str | None = None,
    content: str = "Say hello",
) -> int:
    headers = {"Authorization": f"Bearer {KEYS[key][0]}"}
    if task:
        headers["X-Pointsman-Task"] = task
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            for _ in r.iter_raw():
                pass
            return r.status_code
    return client.post("/v1/chat/completions", json=body, headers=headers).status_code


ROUND: list[tuple[str, str, dict[str, Any]]] = [
    ("chat", "search", {"model": "gpt-4o-mini"}),
    ("chat-stream", "support", {"model": "gpt-4o-mini", "stream": True}),
    ("classify", "search", {"model": "gpt-4o-mini", "task": "classify", "content": '{"label": "billing"}'}),
    ("classify-stream", "support", {"model": "gpt-4o-mini", "task": "classify", "stream": True}),
    ("fallback", "search", {"model": "flaky"}),
    ("upstream-error", "support", {"model": "broken"}),
    ("selfhosted-stream", "support", {"model": "llama", "stream": True}),
    ("selfhosted", "search", {"model": "llama", "task": "summarize"}),
    ("unpriced", "search", {"model": "unpriced"}),
    ("over-budget", "batch", {"model": "gpt-4o-mini"}),
    ("rate-limited", "limited", {"model": "gpt-4o-mini"}),
    ("rate-limited", "limited", {"model": "gpt-4o-mini", "stream": True}),
    ("unknown-model", "search", {"model": "no-such-model"}),
]


def drive_traffic(stack: Stack, seconds: float) -> None:
    clients = [httpx.Client(base_url=g.url, timeout=30) for g in stack.gateways]
    lock = threading.Lock()

    def one(i: int, kind: str, key: str, kw: dict[str, Any]) -> None:
        try:
            status = chat(clients[i % len(clients)], key, **kw)
        except httpx.HTTPError:
            status = 0
        with lock:
            stack.sent[kind] = stack.sent.get(kind, 0) + 1
            stack.statuses[status] = stack.statuses.get(status, 0) + 1

    deadline = time.time() + seconds
    i = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while time.time() < deadline:
            futures = [pool.submit(one, i + j, kind, key, kw) for j, (kind, key, kw) in enumerate(ROUND)]
            if i % 3 == 0:
                futures.append(pool.submit(one, i, "timeout", "search", {"model": "sleepy"}))
            if i % 5 == 0:
                # a burst on the shadowed route: the slow candidate's bounded queue drops some shadows
                futures += [
                    pool.submit(
                        one, i + j, "classify-burst", "search", {"model": "gpt-4o-mini", "task": "classify"}
                    )
                    for j in range(8)
                ]
            for f in futures:
                f.result()
            i += 1
            pause(0.2)
    # shadow reports (verdict, latency ratio, projected saving) on every replica
    for c in clients:
        with contextlib.suppress(httpx.HTTPError):
            c.get("/admin/shadow/report", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        c.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("live")
    tool("prometheus")  # fail early with the install hint
    redis = RedisServer().start()
    frontier = FakeOpenAI(name="frontier", chunks=4, chunk_delay=0.005).start()
    failing = FakeOpenAI(name="failing").start()
    judge = FakeOpenAI(name="judge", content='{"winner": "tie", "reason": "the same"}').start()
    vllm = FakeVLLM(
        name="vllm",
        served=("llama", "llama-candidate", "unpriced"),
        fail_every={"llama-candidate": 4},
        slow_models={"llama-candidate": 0.3},
    ).start()
    gateways: list[GatewayProcess] = []
    prom: subprocess.Popen[bytes] | None = None
    try:
        for n, workers in (("a", 2), ("b", 1)):
            cfg = gateway_config(frontier, failing, vllm, redis.url, tmp / f"data-{n}", judge)
            gateways.append(GatewayProcess(cfg, tmp, workers=workers).start(timeout=60))
        prom, prom_url = start_prometheus(tmp, gateways, vllm)
        stack = Stack(prom_url, gateways, time.time())
        pause(2)  # a first scrape before traffic, so counters start from a sample
        drive_traffic(stack, TRAFFIC_SECONDS)
        pause(4)  # the last increments scraped
        stack.ended = time.time()
        yield stack
    finally:
        if prom is not None:
            stop_process(prom)
        for g in gateways:
            g.stop()
        vllm.stop()
        failing.stop()
        judge.stop()
        frontier.stop()
        redis.stop()


def has_data(doc: dict[str, Any]) -> tuple[bool, str]:
    if doc.get("status") != "success":
        return False, f"{doc.get('errorType')}: {doc.get('error')}"
    data = doc["data"]
    result = data["result"]
    if not result:
        return False, "empty result"
    if data["resultType"] == "matrix":
        values = [float(v) for s in result for _, v in s["values"]]
    elif data["resultType"] == "vector":
        values = [float(s["value"][1]) for s in result]
    else:
        values = [float(result[1])]
    if not values or all(math.isnan(v) for v in values):
        return False, f"only NaN ({len(result)} series)"
    return True, f"{len(result)} series"


# -------------------------------------------------------------------------------------------------- tests
def test_both_replicas_and_vllm_are_scraped(stack: Stack) -> None:
    doc = stack.query("up", time=stack.ended)
    ups = {(s["metric"]["job"], s["metric"]["instance"]): s["value"][1] for s in doc["data"]["result"]}
    assert len([k for k in ups if k[0] == "pointsman"]) == 2 and all(v == "1" for v in ups.values()), ups
    assert stack.statuses.get(200, 0) > 50, stack.statuses


def test_traffic_reached_both_replicas(stack: Stack) -> None:
    per_instance = stack.query(
        'sum by (instance) (pointsman_requests_total{shadow="false"})', time=stack.ended
    )
    assert len(per_instance["data"]["result"]) == 2, "traffic reached both replicas"


QUERIES = all_queries()


@pytest.mark.parametrize("q", QUERIES, ids=[q.where for q in QUERIES])
def test_dashboard_query_returns_data(stack: Stack, q: PanelQuery) -> None:
    expr = substitute(q.expr, static_values(load_dashboard(q.dashboard), RATE_INTERVAL, RANGE))
    if q.instant:
        ok, why = has_data(stack.query(expr, time=stack.ended))
    else:
        ok, why = has_data(stack.query_range(expr, stack.started, stack.ended))
    assert ok, f"{q.where}: no data ({why})\n  {expr}\n  traffic: {stack.sent} statuses {stack.statuses}"


VARS = [(name, v) for name in DASHBOARDS for v in variables(load_dashboard(name)) if v != "datasource"]


@pytest.mark.parametrize(("dashboard", "var"), VARS, ids=[f"{d}-{v}" for d, v in VARS])
def test_dashboard_variable_has_values(stack: Stack, dashboard: str, var: str) -> None:
    definition = variables(load_dashboard(dashboard))[var]["definition"]
    metric, label = definition.removeprefix("label_values(").removesuffix(")").split(", ")
    r = httpx.get(f"{stack.prom_url}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=10)
    values = r.json()["data"]
    assert values, f"{dashboard} variable {var}: {definition} has no values"


def test_alert_rules_load_and_evaluate(stack: Stack) -> None:
    groups = httpx.get(f"{stack.prom_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(
        len(g["rules"]) for g in yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())["groups"]
    )
    bad = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") == "err"]
    assert not bad, bad


def test_recording_rule_expressions_return_data(stack: Stack) -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    missing = []
    for g in doc["groups"]:
        for r in g["rules"]:
            if "record" in r:
                ok, why = has_data(stack.query(r["expr"], time=stack.ended))
                if not ok:
                    missing.append(f"{r['record']}: {why}")
    assert not missing, "\n".join(missing)


def test_alerts_match_the_gateways_series(stack: Stack) -> None:
    """Alerts whose condition the traffic created are pending or firing, with the right labels; others are quiet."""
    alerts = httpx.get(f"{stack.prom_url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    active: dict[str, list[dict[str, str]]] = {}
    for a in alerts:
        if a["state"] in {"pending", "firing"}:
            active.setdefault(a["labels"]["alertname"], []).append(a["labels"])
    expected = {
        "PointsmanModelUnpriced": {"model": "unpriced"},
        "PointsmanBudgetExhausted": {"scope": "team", "name": "batch", "period": "daily"},
        "PointsmanCircuitOpen": {"backend": "failing"},
        "PointsmanShadowCandidateFailing": {"route": "classify"},
    }
    problems = []
    for name, labels in expected.items():
        if not any(labels.items() <= got.items() for got in active.get(name, [])):
            problems.append(f"{name} with {labels} not pending/firing (active: {active.get(name)})")
    for name in ("PointsmanRedisUnreachable", "PointsmanTargetDown"):
        if name in active:
            problems.append(f"{name} is active: {active[name]}")
    assert not problems, "\n".join(problems)
