"""``gateway.heap``: what ``pointsman serve`` does to the garbage collector, paused while it starts and settled once
start-up is complete (each probe in a process of its own: pausing and freezing are for the whole interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys

_SETTLE = """
import gc
from gateway.heap import YOUNG_THRESHOLD, settle
before = gc.get_threshold()
kept = [[] for _ in range(1000)]
settle()
cycle = []
cycle.append(cycle)
del cycle
print(gc.get_freeze_count() >= 1000, gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:]), gc.collect() >= 1)
"""

_PAUSED = """
import gc
from gateway.heap import pause_collection, settle
pause_collection()
paused = not gc.isenabled()
settle()
print(paused, gc.isenabled())
"""

_ENTRY = """
import gc, os
from gateway.command import main
rc = main([{args}])
print(rc, gc.isenabled(), os.environ.get("PYDANTIC_DISABLE_PLUGINS"))
"""


def probe(code: str, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env
    )
    return out.stdout.split()


def test_settling_freezes_the_heap_raises_the_young_threshold_and_still_collects_new_cycles() -> None:
    assert probe(_SETTLE) == ["True", "True", "True"]


def test_settling_turns_a_paused_collector_back_on() -> None:
    assert probe(_PAUSED) == ["True", "True"]


def test_serve_starts_with_the_collector_paused_and_pydantic_plugins_off() -> None:
    # a config that does not exist: serve stops before it would settle, so what it set up is still in place
    out = probe(_ENTRY.format(args='"serve", "--config", "/nonexistent/pointsman.yaml"'), env=_env())
    assert out == ["2", "False", "__all__"]


def test_other_commands_leave_the_collector_and_pydantic_alone() -> None:
    out = probe(_ENTRY.format(args='"check-config", "/nonexistent/pointsman.yaml"'), env=_env())
    assert out == ["2", "True", "None"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
