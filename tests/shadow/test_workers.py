"""``pointsman serve --workers 2``: both workers shadow into the one embedded pair store, the report covers every
pair, and Prometheus counts each pair once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import GatewayProcess
from tests.shadow.conftest import ask, config, route_of
from tests.shadow.fakes import ModelZoo


def test_two_workers_write_one_pair_per_request_into_one_report(zoo: ModelZoo, tmp_path: Path) -> None:
    cfg = config(zoo, tmp_path / "data", {"model": "cand", "sample_rate": 1.0, "compare": ["json_valid"]})
    gw = GatewayProcess(cfg, tmp_path, workers=2).start(timeout=60)
    try:
        with (
            openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as client,
            ThreadPoolExecutor(max_workers=8) as pool,
        ):
            list(pool.map(lambda i: ask(client, i), range(1, 41)))
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        deadline = time.time() + 20
        while True:
            r = route_of(httpx.get(gw.url + "/admin/shadow/report", headers=headers, timeout=30).json())
            if r["counts"]["sampled"] >= 40 or time.time() > deadline:
                break
            time.sleep(0.2)
        text = httpx.get(gw.url + "/metrics", timeout=10).text
    finally:
        gw.stop()
    assert (r["counts"]["sampled"], r["counts"]["paired"], r["cost"]["requests_seen"]) == (40, 40, 40)
    paired = sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "pointsman_shadow_pairs_total" and s.labels.get("outcome") == "paired"
    )
    assert paired == 40
