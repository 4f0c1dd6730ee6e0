"""How quiet the machine was: other processes' CPU and the hypervisor's steal time, both reported with a run."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.bench import procs, report


def test_steal_time_is_the_eighth_column_of_proc_stat_and_never_goes_back() -> None:
    first = procs.steal_s()
    columns = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    assert columns[0] == "cpu"
    assert 0.0 <= first <= int(columns[8]) / os.sysconf("SC_CLK_TCK") <= procs.steal_s()
    time.sleep(0.05)
    assert first <= procs.steal_s()


def test_the_machine_busy_time_leaves_idle_and_steal_out() -> None:
    t = {"user": 1.0, "nice": 2.0, "system": 4.0, "idle": 100.0, "steal": 8.0}
    assert procs.system_busy_s(t) == 7.0
    assert procs.steal_s(t) == 8.0


def test_a_round_the_hypervisor_took_cpu_from_is_not_quiet() -> None:
    assert report.machine_quiet([0.01], [0.02])
    assert not report.machine_quiet([0.01], [report.QUIET_CORES + 0.01])
    assert not report.machine_quiet([report.QUIET_CORES + 0.01], [0.0])


def test_the_noise_line_names_the_steal_time() -> None:
    line = report.noise_text([0.01], {}, [0.08])
    assert "the hypervisor took up to 0.08 (steal time)" in line
    assert "not quiet" in line
    assert "hypervisor" not in report.noise_text([0.01], {})
