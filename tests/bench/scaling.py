"""Worker scaling: pointsman's non-streaming throughput with ``--workers N`` for each N asked, unpinned.

Each N starts pointsman again (same config) with N workers on whatever cores the machine has, probes it, then
measures its maximum req/s with wrk (the load generator stays on its own core when the bench pins) and the CPU
of the whole process tree per request. On a machine with fewer cores than N + 1 (the load and nginx need one),
the figure says what that machine allows, not how far the gateway scales: the report prints the core count.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from tests.bench import measure, openloop, procs
from tests.bench.measure import Settings
from tests.bench.targets import Gateway


def with_workers(gw: Gateway, workers: int) -> Gateway:
    """``gw`` started with ``workers`` workers (its ``--workers`` argument replaced)."""
    argv = list(gw.argv)
    i = argv.index("--workers")
    argv[i + 1] = str(workers)
    return dataclasses.replace(gw, name=f"{gw.name} x{workers}", argv=tuple(argv), python=())


async def measure_scaling(
    gw: Gateway, counts: Sequence[int], settings: Settings, workdir: Path, log: Any
) -> dict[str, Any]:
    """``{"cores": C, "workers": {N: {"rps": .., "rps_cpu_us": ..}}}`` for each worker count."""
    out: dict[str, Any] = {"cores": os.cpu_count(), "workers": {}}
    for n in counts:
        each = with_workers(gw, n)
        log_path = workdir / f"workers-{n}.log"
        _, proc = await openloop.cold_start(partial(each.spawn, None, log_path), gw.url)
        try:
            ep = each.endpoint(proc.pid)
            await measure.probe(ep)
            figures = await measure.throughput(ep, False, "rps", workdir, settings)
        finally:
            await procs.stop(proc)
        out["workers"][n] = {"rps": figures["rps"], "rps_cpu_us": figures["rps_cpu_us"]}
        log(f"  {n} worker(s): {figures['rps']:,.0f} req/s at {figures['rps_cpu_us']:.0f} µs CPU each")
    return out
