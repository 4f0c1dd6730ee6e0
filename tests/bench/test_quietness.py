"""How quiet the machine was: other processes' CPU and the hypervisor's steal time, both reported with a run."""

from __future__ import annotations

import time

from tests.bench import procs, report


def test_steal_time_is_read_from_proc_stat_and_never_goes_back() -> None:
    first = procs.steal_s()
    time.sleep(0.05)
    assert 0.0 <= first <= procs.steal_s()


def test_a_round_the_hypervisor_took_cpu_from_is_not_quiet() -> None:
    assert report.machine_quiet([0.01], [0.02])
    assert not report.machine_quiet([0.01], [report.QUIET_CORES + 0.01])
    assert not report.machine_quiet([report.QUIET_CORES + 0.01], [0.0])


def test_the_noise_line_names_the_steal_time() -> None:
    line = report.noise_text([0.01], {}, [0.08])
    assert "the hypervisor took up to 0.08 (steal time)" in line
    assert "not quiet" in line
    assert "hypervisor" not in report.noise_text([0.01], {})
