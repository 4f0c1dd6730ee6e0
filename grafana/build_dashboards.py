"""Generate the Grafana dashboards in grafana/dashboards/ (run: python grafana/build_dashboards.py).

The JSON files are the product (Grafana's file provider loads them); this script and its sibling modules are
how they are kept consistent (``panel_kit.py``: the building blocks; ``traffic_dashboards.py``: cost and
latency; ``model_dashboards.py``: shadow and fleet): one datasource variable, the same task/model/backend/team variables everywhere, one grid
layout. tests/deploy/test_static.py fails when a committed JSON file differs from what this writes.

Every panel query must use only the metric names of the contract in docs/design.md (and vLLM's own
metrics), and must return data against a live Prometheus scraping a gateway under traffic
(tests/deploy/test_prometheus_live.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from model_dashboards import fleet, shadow
from traffic_dashboards import cost, latency

OUT = Path(__file__).resolve().parent / "dashboards"


DASHBOARDS = {"cost": cost, "latency": latency, "shadow": shadow, "fleet": fleet}


def render() -> dict[str, str]:
    return {
        f"{name}.json": json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {OUT / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
