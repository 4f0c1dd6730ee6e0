"""Shared pieces of the shadow tests: the gateway config around a ``ModelZoo``, SDK/admin clients, traffic."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from routing.shadow.redis_store import RedisPairStore
from routing.shadow.store import PairStore, SQLitePairStore
from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.fakes import ModelSpec, ModelZoo

MTOK = Decimal(1_000_000)
PRICES = {
    "frontier": (Decimal("2.5"), Decimal("10")),
    "frontier2": (Decimal("2.5"), Decimal("10")),
    "cand": (Decimal("0.25"), Decimal("1")),  # 10x cheaper
    "cand-bad": (Decimal("0.25"), Decimal("1")),
    "cand-other": (Decimal("0.25"), Decimal("1")),
    "cand-fail": (Decimal("0.25"), Decimal("1")),
    "cand-slow": (Decimal("0.25"), Decimal("1")),
    "cand-hang": (Decimal("0.25"), Decimal("1")),
    "cand-fast": (Decimal("0.25"), Decimal("1")),
    "cand-flip": (Decimal("0.25"), Decimal("1")),
    "cand-fail-later": (Decimal("0.25"), Decimal("1")),
    "cand-neg": (Decimal("0.25"), Decimal("1")),
    "frontier-fail": (Decimal("2.5"), Decimal("10")),
    "judge-biased": (Decimal("1"), Decimal("1")),
    "judge-first": (Decimal("1"), Decimal("1")),
    "judge-second": (Decimal("1"), Decimal("1")),
    "judge-tie": (Decimal("1"), Decimal("1")),
    "judge-random": (Decimal("1"), Decimal("1")),
    "judge-noisy": (Decimal("1"), Decimal("1")),
    "sloppy": (Decimal("2.5"), Decimal("10")),
    "judge": (Decimal("1"), Decimal("1")),
    "embedder": (Decimal("0.1"), Decimal("0")),
}


BACKEND_OF = {"frontier2": "zoo2", "frontier-fail": "zoo-fail"}


def price(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    p_in, p_out = PRICES[model]
    return (prompt_tokens * p_in + completion_tokens * p_out) / MTOK


def config(
    zoo: ModelZoo,
    data_dir: Path,
    shadow: dict[str, Any],
    promote_when: dict[str, Any] | None = None,
    route: dict[str, Any] | None = None,
    extra_routes: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "name": "extract",
        "match": {"model": "frontier"},
        "targets": [{"model": "frontier"}],
        "shadow": shadow,
    }
    if promote_when is not None:
        r["promote_when"] = promote_when
    r.update(route or {})
    cfg: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "server": {"data_dir": str(data_dir)},
        "backends": {
            "zoo": {"type": "openai", "base_url": zoo.url},
            "zoo2": {"type": "openai", "base_url": zoo.url},  # another provider (fallbacks)
            "zoo-fail": {
                "type": "openai",
                "base_url": zoo.url,
            },  # its breaker may open without hurting the rest
            "dead": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 1},
        },
        "models": {name: {"backend": BACKEND_OF.get(name, "zoo")} for name in PRICES}
        | {"cand-dead": {"backend": "dead"}},
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
        "routes": [r, *(extra_routes or [])],
        "accounting": {
            "pricing": {
                m: {"input_per_mtok": str(a), "output_per_mtok": str(b)} for m, (a, b) in PRICES.items()
            }
        },
    }
    cfg.update(extra)
    return cfg


def shadow_route(
    name: str, shadow: dict[str, Any] | None, targets: tuple[str, ...] = ("frontier",), **kw: Any
) -> dict[str, Any]:
    """A route matching requests for the model ``f-<name>``, sampling everything unless told otherwise."""
    r: dict[str, Any] = {
        "name": name,
        "match": {"model": f"f-{name}"},
        "targets": [{"model": t} for t in targets],
        **kw,
    }
    if shadow is not None:
        r["shadow"] = {"sample_rate": 1.0, **shadow}
    return r


def zoo_models(**over: ModelSpec) -> dict[str, ModelSpec]:
    models = {
        "frontier": ModelSpec(delay_s=0.06),
        "frontier2": ModelSpec(delay_s=0.06),
        "cand": ModelSpec(delay_s=0.03, invalid_every=10),  # 2x faster, 10% invalid JSON
        "cand-bad": ModelSpec(delay_s=0.03, invalid_every=2),
        "judge": ModelSpec(judge=True),
        "embedder": ModelSpec(),
    }
    models.update(over)
    return models


@pytest.fixture
def zoo() -> Iterator[ModelZoo]:
    z = ModelZoo(zoo_models()).start()
    yield z
    z.stop()


def sdk(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def admin(gw: RunningGateway) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


def ask(
    client: openai.OpenAI,
    item: int,
    *,
    stream: bool = False,
    task: str | None = None,
    model: str = "frontier",
    **kw: Any,
) -> str:
    """One request for ``item N``; returns the answer text (streams consumed to the end)."""
    headers = {"x-request-id": f"req-{item}"}
    if task:
        headers["x-pointsman-task"] = task
    msgs = [{"role": "user", "content": f"Extract item {item} as JSON."}]
    if stream:
        chunks: Any = client.chat.completions.create(
            model=model, messages=msgs, stream=True, extra_headers=headers, **kw
        )  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    r = client.chat.completions.create(model=model, messages=msgs, extra_headers=headers, **kw)  # type: ignore[arg-type]
    return r.choices[0].message.content or ""


def drive(
    gw: RunningGateway,
    items: range | list[int],
    *,
    stream: Callable[[int], bool] = lambda i: False,
    task: Callable[[int], str | None] = lambda i: None,
    workers: int = 8,
) -> list[str]:
    with sdk(gw) as client, ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda i: ask(client, i, stream=stream(i), task=task(i)), items))


def settle(gw: RunningGateway, expected_pairs: int, timeout: float = 20.0, **params: str) -> dict[str, Any]:
    """The report once ``expected_pairs`` pairs are written (polls the admin API)."""
    deadline = time.time() + timeout
    last: dict[str, Any] = {}
    with admin(gw) as a:
        while time.time() < deadline:
            last = a.get("/admin/shadow/report", params=params).json()
            got = sum(r["counts"]["sampled"] for r in last.get("routes", []))
            if got >= expected_pairs:
                return last
            time.sleep(0.05)
    raise AssertionError(
        f"only {last and sum(r['counts']['sampled'] for r in last['routes'])} of "
        f"{expected_pairs} pairs after {timeout}s"
    )


def route_of(report: dict[str, Any], name: str = "extract") -> dict[str, Any]:
    return next(r for r in report["routes"] if r["route"] == name)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Independent Wilson score interval (the textbook formula) to hold the report to."""
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def linear_percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PairStore]:
    """A pair store of each kind: embedded (SQLite) and shared (the suite's redis-server and PostgreSQL)."""
    s: PairStore
    if request.param == "postgres":
        from routing.shadow.pg_store import PostgresPairStore

        s = PostgresPairStore(request.getfixturevalue("shared_db"))
    elif request.param == "redis":
        s = RedisPairStore(request.getfixturevalue("redis_server"), prefix=f"test:{uuid.uuid4().hex}:")
    else:
        s = SQLitePairStore(str(tmp_path / "shadow.sqlite3"))
    await s.start()
    yield s
    await s.close()
