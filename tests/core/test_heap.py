"""``gateway.heap.settle``: what ``pointsman serve`` does to the garbage collector once start-up is complete (in a
process of its own: freezing is for the whole interpreter)."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
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


def test_settling_freezes_the_heap_raises_the_young_threshold_and_still_collects_new_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["True", "True", "True"]
