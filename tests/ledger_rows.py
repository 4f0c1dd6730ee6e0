"""Ledger rows for the ledger tests: a few days of varied requests (every report dimension, NULL teams and
tasks, failures, unpriced and shadow rows), written through a real ``SQLiteLedger``, and report cases that
cover whole days, whole and partial hours and every dimension."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

from accounting.ledger import SQLiteLedger
from accounting.record import RequestRecord
from wire.usage import Usage

T0 = 1_795_000_000.0  # 2026-11-19, a few days of rows from here
TEAMS = ("search", "ads", None)
KEYS = ("app", "batch", "web")


def records(n: int, seed: int = 7) -> list[RequestRecord]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            RequestRecord(
                request_id=f"req-{i}",
                ts=T0 + rnd.uniform(0, 3 * 86400),
                key=rnd.choice(KEYS),
                team=rnd.choice(TEAMS),
                task=rnd.choice(("chat", "summarize", None)),
                route=rnd.choice(("default", "cheap")),
                requested_model="gpt-4o-mini",
                endpoint="chat/completions",
                stream=rnd.random() < 0.5,
                upstream_model=rnd.choice(("gpt-4o-mini", "llama")),
                backend=rnd.choice(("openai", "custom")),
                status=200,
                outcome=rnd.choice(("ok", "ok", "ok", "upstream_error")),
                usage=Usage(input_tokens=rnd.randint(0, 5000), output_tokens=rnd.randint(0, 900)),
                cost_usd=Decimal(rnd.randint(0, 10**7)).scaleb(-9),
                priced=rnd.random() < 0.9,
                shadow=rnd.random() < 0.1,
                latency_s=rnd.random(),
            )
        )
    return out


async def write_local(path: Path, recs: list[RequestRecord], rollups: bool = False) -> SQLiteLedger:
    """A started ledger holding ``recs``; without rollups (a PostgreSQL ledger's outbox, or a recount of the rows
    to check reports against) unless asked."""
    led = SQLiteLedger(str(path), rollups=rollups)
    led.start()
    for r in recs:
        led.append(r)
    await led.flushed()
    return led


CASES: list[tuple[tuple[str, ...], float | None, float | None, dict[str, str]]] = [
    ((), None, None, {}),
    (("team",), None, None, {}),
    (("day", "key"), T0, T0 + 3 * 86400, {}),
    (("hour",), T0 + 1234.5, T0 + 86400 + 77.25, {}),  # partial hours at both ends
    (("model", "backend", "outcome"), T0 + 100, T0 + 200, {}),  # inside one hour
    (("day",), T0, None, {"team": "search"}),
    (("shadow", "priced", "estimated"), None, T0 + 40000.5, {"key": "batch"}),
    (("task", "route", "requested_model", "endpoint", "month"), None, None, {"outcome": "ok"}),
    (("service_tier",), T0 + 3600 * 5.5, None, {}),  # not in the rollup: raw rows
    (("hour", "team"), T0 - 86400, T0 + 4 * 86400, {}),  # whole days, but by hour: the hourly rollup
]
