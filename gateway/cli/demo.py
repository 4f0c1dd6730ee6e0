"""``pointsman demo``: the real gateway on simulated models, with traffic, so the whole loop shows without any
provider key or network.

Two simulated backends stand for a frontier API and the team's own self-hosted model (priced by GPU-hour);
a third is the judge. The ``support`` route shadow-tests the custom model against the frontier one with
``token_f1`` and the simulated judge, capture is approved for the ``demo`` team, and a traffic generator (the
official OpenAI SDK, ``demo_traffic``) sends a steady mix of requests. Within a couple of minutes the ledger
shows spend and latency and the shadow report a verdict forming.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from typing import Any

DEMO_TEAM = "demo"
CLIENT_KEY = "sk-pointsman-demo"
"""The demo application's key (it can only reach simulated models)."""


def demo_config(data_dir: str, admin_key: str, console: bool = True) -> dict[str, Any]:
    """The demo's config document (validated like any config file)."""
    frontier = {
        "type": "simulated",
        "seed": 1,
        "first_token": {"median_ms": 420, "p95_ms": 1300},
        "tokens_per_s": 90,
        "error_rate": 0.01,
        "quality": 0.97,
    }
    custom = {
        "type": "simulated",
        "seed": 2,
        "first_token": {"median_ms": 140, "p95_ms": 380},
        "tokens_per_s": 160,
        "error_rate": 0.005,
        "quality": 0.93,
        "self_hosted": True,
        "gpu_hour_usd": "2.50",
        "gpu_count": 1,
    }
    judge = {
        "type": "simulated",
        "seed": 3,
        "judge": True,
        "first_token": {"median_ms": 150, "p95_ms": 400},
        "tokens_per_s": 400,
    }
    doc: dict[str, Any] = {
        "server": {"data_dir": data_dir, "log_level": "warning"},
        "admin_key": admin_key,
        "console": {"enabled": console},
        "backends": {"frontier": frontier, "custom": custom, "judge": judge},
        "models": {
            "gpt-4o-mini": {"backend": "frontier", "owned_by": "simulated-frontier"},
            "text-embedding-3-small": {"backend": "frontier", "owned_by": "simulated-frontier"},
            "support-bot": {"backend": "custom", "owned_by": "your-team"},
            "judge": {"backend": "judge", "owned_by": "simulated-frontier"},
        },
        "keys": [{"name": "demo-app", "key": CLIENT_KEY, "team": DEMO_TEAM}],
        "routes": [
            {
                "name": "support",
                "match": {"tags": {"task": "support"}},
                "targets": [{"model": "gpt-4o-mini"}],
                "shadow": {
                    "model": "support-bot",
                    "sample_rate": 0.5,
                    "capture": True,
                    "compare": ["token_f1", {"type": "llm_judge", "model": "judge"}],
                    "promotion": {"dwell_s": 30},
                },
                "promote_when": {"min_pairs": 30, "scores": {"token_f1": {"min": 0.7}}},
                "capture": {"sample_rate": 1.0},
            },
            {
                "name": "summarize",
                "match": {"tags": {"task": "summarize"}},
                "targets": [{"model": "gpt-4o-mini", "weight": 80}, {"model": "support-bot", "weight": 20}],
                "fallbacks": ["gpt-4o-mini"],
            },
        ],
        "accounting": {
            "pricing": {
                "gpt-4o-mini": {"input_per_mtok": "0.15", "output_per_mtok": "0.60"},
                "text-embedding-3-small": {"input_per_mtok": "0.02", "output_per_mtok": "0"},
                "judge": {"input_per_mtok": "0.15", "output_per_mtok": "0.60"},
                "support-bot": {"throughput_tokens_per_s": 5000},
            },
            "budgets": [{"scope": "team", "name": DEMO_TEAM, "daily_usd": "5", "monthly_usd": "100"}],
        },
    }
    return doc


def banner(url: str, admin_key: str, data_dir: str) -> str:
    return f"""
pointsman demo: the gateway is serving simulated models at {url}
  (a "frontier" gpt-4o-mini, your self-hosted support-bot in shadow on the support route, a simulated judge)

  Console:  {url}/console   (log in with the admin key {admin_key})
  Report:   curl -H 'Authorization: Bearer {admin_key}' '{url}/admin/shadow/report?route=support'
  Spend:    curl -H 'Authorization: Bearer {admin_key}' '{url}/admin/spend?group_by=route,model'
  Data dir: {data_dir}

Try it yourself:
  curl {url}/v1/chat/completions -H 'Authorization: Bearer {CLIENT_KEY}' \\
    -H 'Content-Type: application/json' -H 'X-Pointsman-Task: support' \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "My invoice is wrong"}}]}}'

  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key="{CLIENT_KEY}")
  r = client.chat.completions.create(model="gpt-4o-mini", extra_headers={{"X-Pointsman-Task": "support"}},
                                     messages=[{{"role": "user", "content": "My invoice is wrong"}}])
  print(r.choices[0].message.content)

Traffic is flowing (Ctrl-C stops the demo).
"""


def _approve_capture(url: str, admin_key: str) -> None:
    import httpx

    httpx.post(
        f"{url}/admin/teams/{DEMO_TEAM}/capture",
        json={"approved_by": "demo", "note": "approved by pointsman demo"},
        headers={"authorization": f"Bearer {admin_key}"},
        timeout=10,
    ).raise_for_status()


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import openai  # noqa: F401 - the traffic generator's SDK: fail here, with the fix, not in a thread
    except ModuleNotFoundError:
        print("pointsman demo needs the OpenAI SDK: pip install 'pointsman[demo]'", file=sys.stderr)
        return 2
    import uvicorn

    from gateway.app import create_app
    from gateway.cli.demo_traffic import Traffic
    from gateway.cli.main import uvicorn_settings
    from gateway.config import validate_document

    admin_key = os.environ.get("POINTSMAN_ADMIN_KEY") or "demo-" + secrets.token_urlsafe(12)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="pointsman-demo-")
    cfg = validate_document(demo_config(data_dir, admin_key), "<demo>")
    settings = uvicorn_settings(cfg.server, args.host, args.port)
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), **settings))
    url = f"http://{args.host}:{args.port}"
    stop = threading.Event()
    traffic = Traffic(url + "/v1", CLIENT_KEY, args.rps) if args.rps > 0 else None

    def drive() -> None:
        while not server.started:
            if stop.wait(0.05):
                return
        _approve_capture(url, admin_key)
        print(banner(url, admin_key, data_dir), flush=True)
        if args.duration:
            threading.Timer(args.duration, stop.set).start()
        if traffic is not None:
            traffic.run(stop)
        else:
            stop.wait()
        server.should_exit = True

    driver = threading.Thread(target=drive, name="demo-driver", daemon=True)
    driver.start()
    started = time.monotonic()
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the demo's normal end
        pass
    finally:
        stop.set()
        driver.join(10)
    if traffic is not None:
        c = traffic.counts
        took = time.monotonic() - started
        skipped = f", {c.skipped} skipped: every sender busy" if c.skipped else ""
        print(
            f"pointsman demo: {c.sent} requests in {took:.0f}s ({c.ok} answered, {c.failed} failed{skipped})"
        )
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the gateway on simulated models with traffic (no API key needed)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    p.add_argument("--rps", type=float, default=4.0, help="requests per second the demo app sends (0: none)")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: run on)")
    p.add_argument("--data-dir", help="where the demo's stores live (default: a new temporary directory)")
    p.set_defaults(func=cmd_demo)
