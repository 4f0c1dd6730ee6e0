"""``procs.Awake``: the busy loops that keep CPUs from halting during the bench's "CPUs kept awake" phases."""

from __future__ import annotations

import os
import time

from tests.bench.procs import Awake


def test_each_cpu_gets_one_idle_priority_loop_pinned_to_it_and_none_is_left_after() -> None:
    with Awake([0]) as awake:
        (proc,) = awake.loops
        deadline = time.monotonic() + 10
        while os.sched_getscheduler(proc.pid) != os.SCHED_IDLE and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop sets its own priority once it has started
        assert os.sched_getscheduler(proc.pid) == os.SCHED_IDLE
        assert os.sched_getaffinity(proc.pid) == {0}
    assert proc.poll() is not None and awake.loops == []
