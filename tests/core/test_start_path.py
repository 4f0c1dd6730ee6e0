"""What a start makes: no class of the gateway's packages that a start imports is a dataclass.

``@dataclass`` writes each class's methods as source and compiles them when its module is imported: ~3.6 M
instructions for a frozen one (six methods), ~1.2 M for one with its ``__init__`` written out, against ~0.08 M for a
plain class (callgrind). The ~75 the gateway made at start were ~9% of a cold start's instructions, so the classes
a start imports are plain classes with ``__slots__`` and their ``__init__`` written out (docs/design.md, "the
compiled build"). Checked in a fresh interpreter that loads a config with a route list and a shadow, builds the
app and runs its lifespan's start and close, as ``pointsman serve`` does before its first request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

_START = r"""
import asyncio, dataclasses, inspect, json, sys

from gateway.app import create_app
from gateway.cli.main import load

app = create_app(load(sys.argv[1]))


async def lifespan() -> None:
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    outbox: asyncio.Queue[dict] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put))
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await task


asyncio.run(lifespan())
ours = ("gateway", "routing", "serving", "accounting", "wire")
made = sorted(
    f"{name}.{cls.__qualname__}"
    for name, module in list(sys.modules.items())
    if name.split(".")[0] in ours
    for cls in vars(module).values()
    if inspect.isclass(cls) and cls.__module__ == name and dataclasses.is_dataclass(cls)
)
print(json.dumps({"dataclasses": made, "modules": sum(n.split(".")[0] in ours for n in sys.modules)}))
"""


def _config(tmp_path: Path) -> Path:
    closed = "http://127.0.0.1:9/v1"  # nothing listens: the start does not call upstreams
    doc = {
        "server": {"data_dir": str(tmp_path / "data")},
        "backends": {"up": {"type": "openai", "base_url": closed, "api_key": "sk-up"}},
        "models": {"chat": {"backend": "up"}, "candidate": {"backend": "up"}},
        "keys": [{"name": "app", "key": "sk-app-start-path", "team": "t"}],
        "routes": [
            {"name": "tagged", "match": {"tags": {"task": "t1"}}, "targets": [{"model": "chat"}]},
            {
                "name": "default",
                "match": {"model": "chat"},
                "targets": [],
                "shadow": {"model": "candidate", "sample_rate": 0.1},
            },
        ],
    }
    path = tmp_path / "pointsman.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_start_makes_no_dataclass_of_the_gateways_packages(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _START, str(_config(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["modules"] > 100  # the start imported the request path
    assert seen["dataclasses"] == []
