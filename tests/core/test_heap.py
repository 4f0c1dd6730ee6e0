"""``gateway.heap``: what ``pointsman serve`` does to the garbage collector, paused while it starts and settled once
start-up is complete (each probe in a process of its own: freezing is for the whole interpreter)."""

from __future__ import annotations

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


def probe(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_settling_freezes_the_heap_raises_the_young_threshold_and_still_collects_new_cycles() -> None:
    assert probe(_SETTLE) == ["True", "True", "True"]


def test_settling_turns_a_paused_collector_back_on() -> None:
    assert probe(_PAUSED) == ["True", "True"]
