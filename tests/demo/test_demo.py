"""``pointsman demo``: the real gateway on simulated models, with the demo's own traffic, as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx

from tests.fakes.server import free_port

ADMIN_KEY = "sk-demo-test-admin"


def test_the_demo_serves_requests_records_spend_and_forms_pairs(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", "--port", str(port), "--rps", "12"]
            + ["--data-dir", str(tmp_path / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "POINTSMAN_ADMIN_KEY": ADMIN_KEY},
        )
    url = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    spend, pairs = {}, 0
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            try:
                spend = admin.get("/admin/spend").json()["total"]
                pairs = admin.get("/admin/shadow/pairs", params={"route": "support"}).json()["count"]
            except httpx.TransportError:
                continue
            if spend["requests"] >= 20 and pairs >= 3:
                break
    finally:
        admin.close()
        proc.send_signal(signal.SIGINT)
        try:
            rc: int | None = proc.wait(30)
        except subprocess.TimeoutExpired:  # say why from its log, not with a bare timeout
            proc.kill()
            proc.wait(10)
            rc = None
    text = log.read_text()
    assert rc == 0, f"exit status {rc} (None: still running 30 s after Ctrl-C)\n{text}"
    assert spend["requests"] >= 20, text
    assert Decimal(spend["cost_usd"]) > 0
    assert pairs >= 3
    assert f"{url}/console" in text and "curl " in text and "from openai import OpenAI" in text
    assert "pointsman demo: " in text.splitlines()[-1]
