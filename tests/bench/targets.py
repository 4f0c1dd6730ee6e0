"""What gets measured: nginx directly, the plain pass-through proxy, and pointsman."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.bench import fixtures, procs
from tests.bench.upstream import Upstream

DIRECT, PLAIN, POINTSMAN = "direct", "plain", "pointsman"
GATEWAYS = (PLAIN, POINTSMAN)


@dataclass(frozen=True)
class Endpoint:
    """Where the load goes, and which process tree pays for it."""

    name: str
    chat_url: str
    stream_url: str
    pid: int
    chat_headers: tuple[tuple[str, str], ...] = ()  # sent besides the bench's own (a peer's routing headers)
    stream_headers: tuple[tuple[str, str], ...] = ()
    peer: bool = False  # a failed phase is reported, not fatal
    rates: tuple[float, float] | None = (
        None  # its own latency and TTFB rates (a peer slower than the standard)
    )

    def headers(self, stream: bool) -> dict[str, str]:
        return dict(self.stream_headers if stream else self.chat_headers)


@dataclass(frozen=True)
class Gateway:
    """How to start one gateway process (one worker) on a fixed port."""

    name: str
    argv: tuple[str, ...]
    port: int
    python: tuple[
        str, ...
    ] = ()  # the same process as (interpreter, program...), for sampler.py; () if not Python
    env: tuple[tuple[str, str], ...] = ()  # set in its environment
    chat_headers: tuple[tuple[str, str], ...] = ()
    stream_headers: tuple[tuple[str, str], ...] = ()
    peer: bool = False
    rates: tuple[float, float] | None = None
    start_timeout_s: float = 30.0

    @property
    def profilable(self) -> bool:
        return bool(self.python)

    def profiled(self, out: Path) -> Gateway:
        """This gateway run under ``sampler.py``, which writes its profile to ``out`` (SIGUSR1 .. SIGUSR2). Always
        from the installed checkout's Python sources (``PYTHONPATH`` dropped from ``env``): the sampler reads Python frames, and a
        compiled module's functions have none, so their time would land on whichever Python caller is below
        them (in a compiled run, ``server`` took half and ``accounting`` nothing)."""
        python, *program = self.python
        argv = (python, str(Path(__file__).with_name("sampler.py")), str(out), *program)
        env = tuple(kv for kv in self.env if kv[0] != "PYTHONPATH")
        return dataclasses.replace(self, argv=argv, python=(), env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def spawn(self, cpu: int | None, log: Path) -> subprocess.Popen[bytes]:
        return procs.spawn(procs.pinned(cpu, self.argv), log, dict(self.env))

    def endpoint(self, pid: int) -> Endpoint:
        return Endpoint(
            self.name, self.url, self.url, pid, self.chat_headers, self.stream_headers, self.peer, self.rates
        )


def direct(up: Upstream) -> Endpoint:
    return Endpoint(
        DIRECT, f"{up.chat_base}/chat/completions", f"{up.sse_base}/chat/completions", up.proc.pid
    )


def plain(up: Upstream) -> Gateway:
    script = Path(__file__).with_name("plain_proxy.py")
    port = procs.free_port()
    argv = [sys.executable, str(script), "--port", str(port), "--upstream", up.chat_base]
    argv += ["--stream-upstream", up.sse_base, "--api-key", fixtures.UPSTREAM_KEY]
    return Gateway(PLAIN, tuple(argv), port, tuple(argv))


def pointsman(
    up: Upstream,
    binary: Path,
    workdir: Path,
    rules: int,
    otlp: str | None = None,
    features: Features | None = None,
    name: str = POINTSMAN,
    tree: Path | None = None,
) -> Gateway:
    """pointsman with the bench's config; ``rules`` and ``otlp`` (traces at 100%) are the main target's options,
    ``features`` a feature row's (``FEATURES``); ``tree``: a checkout to import instead (a compiled copy)."""
    port = procs.free_port()
    home = workdir if name == POINTSMAN else workdir / _slug(name)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "pointsman.yaml"
    feats = features or Features(rules=rules, otlp=otlp)
    doc = pointsman_config(up, port, feats.rules, feats)
    if name != POINTSMAN:
        doc["server"]["data_dir"] = str(home / "data")  # its own ledger, policy and shadow stores
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", "1")
    python = interpreter_of(binary)  # the console script's interpreter, for the profiled run
    env = tree_env(tree)
    return Gateway(name, (str(binary), *args), port, (python, "-m", "gateway.cli", *args), env=env)


def tree_env(tree: Path | None) -> tuple[tuple[str, str], ...]:
    """The environment that makes a pointsman process import ``tree`` (None: the installed checkout)."""
    return (("PYTHONPATH", str(tree)),) if tree is not None else ()


def interpreter_of(script: Path) -> str:
    """The Python that runs a console script: its shebang's, when that names a Python (``#!/venv/bin/python3``,
    ``#!/usr/bin/env python3``); else (a shell wrapper, a binary) the bench's own, which imports the same
    checkout."""
    try:
        with script.open("rb") as f:
            first = f.readline(512)
    except OSError:
        return sys.executable
    if not first.startswith(b"#!"):
        return sys.executable
    words = first[2:].decode(errors="replace").split()
    if words and Path(words[0]).name == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(words[0]) if words else None
        words = [found] if found else []
    if words and Path(words[0]).name.startswith("python"):
        return words[0]
    return sys.executable


@dataclass(frozen=True)
class Features:
    """What a feature row turns on over pointsman's defaults (request logs are on by default)."""

    rules: int = 0  # non-matching routing rules before the catch-all
    otlp: str | None = None  # traces at 100% to this OTLP/HTTP endpoint
    logs: bool = True  # structured request logs (observability.logs.enabled)
    redis: str | None = None  # budgets and rate limits on this Redis (they never refuse)
    shadow: float = 0.0  # shadow sample rate on the bench routes (a candidate on the same nginx)


FEATURE_ROWS: dict[str, str] = {
    "defaults": "pointsman, defaults (request logs on)",
    "no-logs": "request logs off",
    "tracing": "traces at 100% (OTLP/HTTP to a local sink)",
    "rules": "50 routing rules before the match",
    "redis": "budgets and rate limits on Redis",
    "shadow": "shadowing 10% to a candidate",
    "all": "all of them (logs, tracing, 50 rules, Redis, shadow)",
}
REDIS_ROWS = ("redis", "all")
"""The rows with budgets and limits on Redis: each gets a Redis of its own (a fleet of one), so that it never copies
another row's shared ledger rows into its own while measured."""
FEATURE_PREFIX = "pointsman["
FEATURE_RULES = 50
FEATURE_SHADOW = 0.1


def feature_name(row: str) -> str:
    return f"{FEATURE_PREFIX}{row}]"


def feature_row(name: str) -> str | None:
    return name[len(FEATURE_PREFIX) : -1] if name.startswith(FEATURE_PREFIX) else None


def features_of(row: str, otlp: str | None, redis: str | None) -> Features:
    """A feature row's settings; ``otlp`` and ``redis``: the local sink and server the bench started."""
    every = row == "all"
    return Features(
        rules=FEATURE_RULES if row == "rules" or every else 0,
        otlp=otlp if row == "tracing" or every else None,
        logs=row != "no-logs",
        redis=redis if row == "redis" or every else None,
        shadow=FEATURE_SHADOW if row == "shadow" or every else 0.0,
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_")


def pointsman_config(up: Upstream, port: int, rules: int, features: Features | None = None) -> dict[str, Any]:
    """Two backends on the two nginx servers, two models, one key; ``rules`` > 0 adds a route list; ``features``
    adds what a feature row measures."""
    f = features or Features(rules=rules)
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port},
        "backends": {
            "up": {"type": "openai", "base_url": up.chat_base, "api_key": fixtures.UPSTREAM_KEY},
            "upstream_stream": {"type": "openai", "base_url": up.sse_base, "api_key": fixtures.UPSTREAM_KEY},
        },
        "models": {
            fixtures.CHAT_MODEL: {"backend": "up", "upstream_model": fixtures.UPSTREAM_MODEL},
            fixtures.STREAM_MODEL: {"backend": "upstream_stream", "upstream_model": fixtures.UPSTREAM_MODEL},
        },
        "keys": [{"name": "bench", "key": fixtures.API_KEY, "team": "perf"}],
    }
    if f.shadow > 0:
        config["models"] |= {
            SHADOW_CHAT: {"backend": "up", "upstream_model": fixtures.UPSTREAM_MODEL},
            SHADOW_STREAM: {"backend": "upstream_stream", "upstream_model": fixtures.UPSTREAM_MODEL},
        }
    if rules > 0 or f.shadow > 0:
        config["routes"] = route_rules(rules, f.shadow)
    observability: dict[str, Any] = {}
    if f.otlp is not None:  # traces at 100%: the cost of tracing on the request path
        observability["traces"] = {"endpoint": f.otlp, "sample_rate": 1.0}
    if not f.logs:
        observability["logs"] = {"enabled": False}
    if observability:
        config["observability"] = observability
    if f.redis is not None:  # checked on every request, never reached
        config["redis"] = {"url": f.redis}
        config["accounting"] = {
            "budgets": [{"scope": "team", "name": "perf", "daily_usd": "1000000", "monthly_usd": "10000000"}],
            "rate_limits": [{"key": "bench", "requests_per_min": 1_000_000_000, "tokens_per_min": 10**12}],
        }
    return config


SHADOW_CHAT, SHADOW_STREAM = "bench-shadow", "bench-shadow-stream"


def route_rules(n: int, shadow: float = 0.0) -> list[dict[str, Any]]:
    """``n`` rules that never match the bench's requests (they carry no tags), then a catch-all for
    the bench models whose empty ``targets`` keeps the requested model; with ``shadow`` > 0, one catch-all per
    bench model, each shadowing that share of its requests to a candidate on the same nginx server."""
    misses = [
        {"name": f"r{i}", "match": {"tags": {"task": f"t{i}"}}, "targets": [{"model": fixtures.CHAT_MODEL}]}
        for i in range(n)
    ]
    if shadow <= 0:
        return [*misses, {"name": "default", "match": {"model": "bench-*"}, "targets": []}]
    return [
        *misses,
        *(
            {
                "name": name,
                "match": {"model": model},
                "targets": [],
                "shadow": {"model": candidate, "sample_rate": shadow},
            }
            for name, model, candidate in (
                ("chat", fixtures.CHAT_MODEL, SHADOW_CHAT),
                ("stream", fixtures.STREAM_MODEL, SHADOW_STREAM),
            )
        ),
    ]
