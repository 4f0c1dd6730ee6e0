"""What gets measured: nginx directly, the plain pass-through proxy, and pointsman."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Gateway:
    """How to start one gateway process (one worker) on a fixed port."""

    name: str
    argv: tuple[str, ...]
    port: int
    python: tuple[
        str, ...
    ] = ()  # the same process as (interpreter, program...), for sampler.py; () if not Python

    @property
    def profilable(self) -> bool:
        return bool(self.python)

    def profiled(self, out: Path) -> Gateway:
        """This gateway run under ``sampler.py``, which writes its profile to ``out`` (SIGUSR1 .. SIGUSR2)."""
        python, *program = self.python
        argv = (python, str(Path(__file__).with_name("sampler.py")), str(out), *program)
        return Gateway(self.name, argv, self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def spawn(self, cpu: int | None, log: Path) -> subprocess.Popen[bytes]:
        return procs.spawn(procs.pinned(cpu, self.argv), log)

    def endpoint(self, pid: int) -> Endpoint:
        return Endpoint(self.name, self.url, self.url, pid)


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


def pointsman(up: Upstream, binary: Path, workdir: Path, rules: int, otlp: str | None = None) -> Gateway:
    port = procs.free_port()
    config = workdir / "pointsman.yaml"
    doc = pointsman_config(up, port, rules)
    if otlp is not None:  # traces at 100%: the cost of tracing on the request path
        doc["observability"] = {"traces": {"endpoint": otlp, "sample_rate": 1.0}}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", "1")
    python = binary.with_name("python")  # the console script's interpreter, for the profiled run
    return Gateway(POINTSMAN, (str(binary), *args), port, (str(python), "-m", "gateway.cli", *args))


def pointsman_config(up: Upstream, port: int, rules: int) -> dict[str, Any]:
    """Two backends on the two nginx servers, two models, one key; ``rules`` > 0 adds a route list."""
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
    if rules > 0:
        config["routes"] = route_rules(rules)
    return config


def route_rules(n: int) -> list[dict[str, Any]]:
    """``n`` rules that never match the bench's requests (they carry no tags), then a catch-all for
    the bench models whose empty ``targets`` keeps the requested model."""
    misses = [
        {"name": f"r{i}", "match": {"tags": {"task": f"t{i}"}}, "targets": [{"model": fixtures.CHAT_MODEL}]}
        for i in range(n)
    ]
    return [*misses, {"name": "default", "match": {"model": "bench-*"}, "targets": []}]
