"""Other gateways measured as targets in the same run (``--peers litellm,portkey``), each installed into its own
directory under the cache (``.cache/bench-peers/`` by default, gitignored) the first time it is asked for:

* ``litellm``: LiteLLM's proxy, ``pip install 'litellm[proxy]'`` into its own venv; no database, no callbacks,
  ``LITELLM_LOG=ERROR``, the bundled model cost map (no download); a ``model_list`` naming the bench's two models
  on the two nginx servers, the bench key as its master key; one worker.
* ``portkey``: Portkey's open-source gateway, ``npm install @portkey-ai/gateway`` into its own directory (with
  ``@hono/node-server`` pinned: ``HONO_NODE_SERVER``), run with Node (``start-server.js --headless``); it routes by headers, so the load generator sends
  ``x-portkey-provider: openai`` and ``x-portkey-custom-host`` naming the nginx server of each kind.

Both are slower than the standard latency rates (200 requests/s, 50 streams/s): LiteLLM's latency and time to
first byte are measured at 25/s and 10/s (the rates the reference used), and the report says so. A peer that
fails to install, start or answer a kind of request is reported (its ``failures``), not fatal.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.bench import fixtures, interpreter, procs
from tests.bench.targets import Gateway
from tests.bench.upstream import Upstream

LITELLM, PORTKEY = "litellm", "portkey"
PEERS = (LITELLM, PORTKEY)
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "bench-peers"
LITELLM_SPEC = "litellm[proxy]"
PORTKEY_SPEC = "@portkey-ai/gateway"
LITELLM_RATES = (25.0, 10.0)  # latency req/s, TTFB streams/s


class PeerUnavailable(RuntimeError):
    """A peer could not be installed here (no network to its registry, no node, ...)."""


def litellm_home(cache: Path) -> Path:
    """LiteLLM's venv under ``cache``: one per interpreter (``--python``), so that it runs under the one the
    other Python targets run under."""
    return cache / f"{LITELLM}-{interpreter.base_executable().name}-{platform.python_version()}"


def ensure_litellm(cache: Path, log: Callable[[str], None]) -> Path:
    """The ``litellm`` console script of a venv under ``cache``, installed on first use."""
    home = litellm_home(cache)
    script = home / "bin" / "litellm"
    if (home / ".installed").exists() and script.exists():
        return script
    log(f"installing {LITELLM_SPEC} into {home} (once; a few minutes)")
    _run([sys.executable, "-m", "venv", "--clear", str(home)], cache / "litellm-install.log")
    _run([str(home / "bin" / "pip"), "install", "--quiet", LITELLM_SPEC], cache / "litellm-install.log")
    if not script.exists():
        raise PeerUnavailable(f"{LITELLM_SPEC} installed no {script}")
    (home / ".installed").write_text(_version(home / "bin" / "pip", "litellm"))
    return script


HONO_NODE_SERVER = "1.13.8"
"""The ``@hono/node-server`` Portkey's gateway is installed with (its own range, ``^1.3.3``, takes the newest).
From 1.14.0 that package's lightweight ``Response``, built from a fetched response (``new Response(body,
fetched)``), returns the fetched response's headers, which are immutable; Portkey builds every streamed answer that
way and then appends its own headers to it, so each stream failed with HTTP 500 ``Something went wrong``
(``TypeError: immutable`` in its log). 1.13.8 builds a response of its own there: streams work."""


def ensure_portkey(cache: Path, log: Callable[[str], None]) -> Path:
    """Portkey's ``start-server.js`` in an npm project under ``cache``, installed on first use (again when the
    installed ``@hono/node-server`` is not ``HONO_NODE_SERVER``)."""
    home = cache / PORTKEY
    modules = home / "node_modules"
    server = modules / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if server.exists() and _package_version(modules / "@hono" / "node-server") == HONO_NODE_SERVER:
        return server
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise PeerUnavailable("node and npm are needed for Portkey's gateway (apt-get install nodejs npm)")
    log(f"installing {PORTKEY_SPEC} into {home} (once)")
    home.mkdir(parents=True, exist_ok=True)
    project = {"private": True, "overrides": {"@hono/node-server": HONO_NODE_SERVER}}
    (home / "package.json").write_text(json.dumps(project, indent=2) + "\n")
    _run([npm, "install", "--no-audit", "--no-fund", PORTKEY_SPEC], cache / "portkey-install.log", cwd=home)
    if not server.exists():
        raise PeerUnavailable(f"{PORTKEY_SPEC} installed no {server}")
    return server


def _package_version(package: Path) -> str:
    """The version an installed npm package says it is ("" if none)."""
    try:
        return str(json.loads((package / "package.json").read_text()).get("version", ""))
    except (OSError, ValueError):
        return ""


def litellm(up: Upstream, script: Path, workdir: Path) -> Gateway:
    port = procs.free_port()
    home = workdir / LITELLM
    home.mkdir(parents=True, exist_ok=True)
    config = home / "litellm.yaml"
    config.write_text(yaml.safe_dump(litellm_config(up), sort_keys=False))
    argv = (
        str(script),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    )
    env = (
        ("LITELLM_LOG", "ERROR"),
        ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
        ("LITELLM_MASTER_KEY", fixtures.API_KEY),
        ("DISABLE_ADMIN_UI", "True"),
        ("TELEMETRY", "False"),
    )
    return Gateway(LITELLM, argv, port, env=env, peer=True, rates=LITELLM_RATES, start_timeout_s=120.0)


def litellm_config(up: Upstream) -> dict[str, object]:
    def entry(model: str, base: str) -> dict[str, object]:
        params = {
            "model": f"openai/{fixtures.UPSTREAM_MODEL}",
            "api_base": base,
            "api_key": fixtures.UPSTREAM_KEY,
        }
        return {"model_name": model, "litellm_params": params}

    return {
        "model_list": [entry(fixtures.CHAT_MODEL, up.chat_base), entry(fixtures.STREAM_MODEL, up.sse_base)],
        "general_settings": {"master_key": fixtures.API_KEY},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }


def portkey(up: Upstream, server: Path) -> Gateway:
    port = procs.free_port()
    node = shutil.which("node") or "node"
    argv = (node, str(server), f"--port={port}", "--headless")

    def route(base: str) -> tuple[tuple[str, str], ...]:
        return (("x-portkey-provider", "openai"), ("x-portkey-custom-host", base))

    return Gateway(
        PORTKEY, argv, port, chat_headers=route(up.chat_base), stream_headers=route(up.sse_base), peer=True
    )


def version(name: str, cache: Path) -> str:
    """The installed version of a peer ("" if unknown)."""
    try:
        if name == LITELLM:
            return (litellm_home(cache) / ".installed").read_text().strip()
        return _package_version(cache / PORTKEY / "node_modules" / "@portkey-ai" / "gateway")
    except (OSError, ValueError):
        return ""


def _run(argv: list[str], log: Path, cwd: Path | None = None) -> None:
    failed = procs.run_logged(argv, log, cwd)
    if failed is not None:
        raise PeerUnavailable(failed)


def _version(pip: Path, package: str) -> str:
    out = subprocess.run([str(pip), "show", package], capture_output=True, text=True, check=False).stdout
    return next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:")), ""
    )
