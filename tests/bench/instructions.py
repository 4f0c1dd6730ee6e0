"""Instructions per request of pointsman's feature rows, counted by valgrind's callgrind: a figure that does not
move with the machine's noise, for judging small changes to the request path.

    python -m tests.bench.instructions [--rows defaults,redis,all] [--trees OLD,NEW] [--kinds request,stream]
                                       [--seconds 4] [--pause-ms P] [--shadow-rate R] [--json PATH]

CPU time per request moves by 6-10% between runs on a shared machine, more than most single changes save. The
number of instructions a request executes does not: each (row, tree, kind) starts ``pointsman serve`` under
``valgrind --tool=callgrind`` (instrumentation off while it starts), warms it up with wrk, then counts an idle
window and a window of load of the same length; a request's instructions are (load - idle) / requests. They count
user space only, every thread (the ledger writer's too), and no cache misses or system calls, so they are not CPU
time; they are what the code asks of the CPU, and the ratio between two rows or trees is close to the CPU ratio
(session 10: redis 1.34x, all 1.59-1.72x the defaults, against 1.33x and 1.60x CPU at the paced load). Work done
per unit of time (pushes every 50 ms, leases sized to 0.25 s of traffic, trace batches) is shared by ~35x fewer
requests than natively, so it is overstated: compare trees on the same row.

Under callgrind pointsman runs ~50x slower, so wrk's 16 connections keep it saturated: requests are batched as at
maximum throughput. Rows are those of the feature report (``tests/bench/README.md``); ``--trees`` are checkouts
(``git worktree add --detach /tmp/old <rev>``), run with ``PYTHONPATH`` set to each, as in ``tests.bench.ab``.
Needs valgrind (``apt-get install valgrind``; ``callgrind_control`` comes with it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tests.bench import ab, procs, targets, upstream, wrk
from tests.bench.measure import LOAD_CPU
from tests.fakes.telemetry import FakeTelemetry
from tests.redis_server import RedisServer

CONNECTIONS = 16
START_S = 120.0
"""How long pointsman may take to start under valgrind (usually 5-10 s)."""


@dataclass(frozen=True)
class Count:
    row: str
    tree: str
    kind: str
    requests: int
    instructions: float
    """Per request, the idle window's subtracted."""
    idle_share: float
    """The idle window's instructions as a share of the load window's (timers, background loops)."""
    rate: float = 0.0
    """Requests per second in the load window (under callgrind: ~30-50x fewer than natively)."""


def dump_total(text: str) -> int:
    """The instruction total of one callgrind dump (its ``totals:`` line, or ``summary:`` when it has none)."""
    summary = None
    for line in text.splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
        if line.startswith("summary:"):
            summary = int(line.split()[1])
    if summary is None:
        raise ValueError("not a callgrind dump: no totals or summary line")
    return summary


def per_request(load: int, idle: int, requests: int) -> float:
    """Instructions per request of a load window, less an idle window of the same length."""
    if requests <= 0:
        raise ValueError("no request succeeded in the load window")
    return (load - idle) / requests


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _take_dumps(out: Path) -> int:
    """Sum and remove the dump files callgrind wrote for ``out`` (one per thread when it separates them)."""
    total = 0
    for f in sorted(out.parent.glob(out.name + ".*")):
        total += dump_total(f.read_text(errors="replace"))
        f.unlink()
    return total


async def _count(
    tree: Path,
    row: str,
    kinds: list[str],
    seconds: float,
    up: upstream.Upstream,
    sink: str,
    work: Path,
    pause_ms: int = 0,
    shadow_rate: float | None = None,
) -> list[Count]:
    # a Redis of its own (a fleet of one): with one for all, a gateway copied the shared ledger rows of the
    # (row, tree) runs before it into its own ledger while counted
    redis = RedisServer().start() if row in targets.REDIS_ROWS else None
    try:
        features = None if row == "defaults" else targets.features_of(row, sink, redis.url if redis else None)
        return await _count_with(tree, row, kinds, seconds, up, features, work, pause_ms, shadow_rate)
    finally:
        if redis is not None:
            redis.stop()


async def _count_with(
    tree: Path,
    row: str,
    kinds: list[str],
    seconds: float,
    up: upstream.Upstream,
    features: targets.Features | None,
    work: Path,
    pause_ms: int,
    shadow_rate: float | None,
) -> list[Count]:
    if features is not None and features.shadow and shadow_rate is not None:
        features = replace(features, shadow=shadow_rate)
    home = work / f"{row}-{abs(hash(tree))}"
    out = home / "callgrind.out"
    home.mkdir(parents=True)
    launcher = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    proc, port = await ab._serve(tree, up, home, features, launcher, START_S)
    counts = []
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        _control(proc.pid, "-i", "on")
        for kind in kinds:
            script = wrk.write_script(work / f"{kind}.lua", stream=kind == "stream", pause_ms=pause_ms)
            await wrk.run(url, script, duration_s=seconds, connections=CONNECTIONS, cpu=LOAD_CPU)
            await asyncio.sleep(0.5)  # what the warm-up left (ledger writes, pushes) is done
            _control(proc.pid, "-z")
            await asyncio.sleep(seconds)
            _control(proc.pid, "-d")
            idle = _take_dumps(out)
            _control(proc.pid, "-z")
            res = await wrk.run(url, script, duration_s=seconds, connections=CONNECTIONS, cpu=LOAD_CPU)
            _control(proc.pid, "-d")
            load = _take_dumps(out)
            if res.status_errors or res.socket_errors:
                raise RuntimeError(f"{tree} [{row}]: {kind}s failed ({res})")
            counts.append(
                Count(
                    row,
                    str(tree),
                    kind,
                    res.ok,
                    per_request(load, idle, res.ok),
                    idle / load if load else 0.0,
                    res.ok_per_s,
                )
            )
    finally:
        await procs.stop(proc, grace_s=30.0)
    return counts


async def measure(
    trees: list[Path],
    rows: list[str],
    kinds: list[str],
    seconds: float,
    work: Path,
    pause_ms: int = 0,
    shadow_rate: float | None = None,
) -> list[Count]:
    up = await upstream.start(work / "nginx", LOAD_CPU)
    sink = FakeTelemetry(decode=False).start()
    counts: list[Count] = []
    try:
        for row in rows:
            for tree in trees:
                counts += await _count(tree, row, kinds, seconds, up, sink.url, work, pause_ms, shadow_rate)
                print(f"  {row} {tree}: done", file=sys.stderr, flush=True)
    finally:
        await procs.stop(up.proc)
        sink.stop()
    return counts


def table(counts: list[Count], trees: list[Path]) -> str:
    """One line per (row, kind): each tree's instructions per request (k), the ratio to the defaults row of the same
    tree, and with two trees, second / first."""
    by = {(c.row, c.tree, c.kind): c for c in counts}
    rows = list(dict.fromkeys(c.row for c in counts))
    kinds = list(dict.fromkeys(c.kind for c in counts))
    names = [f"tree {i}" for i in range(len(trees))]
    head = f"{'row':10s} {'kind':8s}" + "".join(f" {n + ' k instr':>14s} {'x defaults':>10s}" for n in names)
    if len(trees) == 2:
        head += f" {'tree 1 / tree 0':>16s}"
    lines = [head, "-" * len(head)]
    for row in rows:
        for kind in kinds:
            line = f"{row:10s} {kind:8s}"
            vals: list[float | None] = []
            rates: list[str] = []
            for tree in trees:
                c = by.get((row, str(tree), kind))
                base = by.get(("defaults", str(tree), kind))
                if c is None:
                    line += f" {'—':>14s} {'':>10s}"
                    vals.append(None)
                    continue
                ratio = f"{c.instructions / base.instructions:.3f}x" if base else "—"
                line += f" {c.instructions / 1e3:14.1f} {ratio:>10s}"
                rates.append(f"{c.rate:.0f}")
                vals.append(c.instructions)
            if len(trees) == 2 and vals[0] and vals[1]:
                line += f" {vals[1] / vals[0]:15.3f}x"
            lines.append(f"{line}   ({'/'.join(rates)} req/s)")
    lines += ["", *(f"tree {i}: {t}" for i, t in enumerate(trees))]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--rows", default="defaults,all", help="comma-separated among " + ",".join(targets.FEATURE_ROWS)
    )
    p.add_argument("--trees", default=".", help="comma-separated checkouts (default: this one)")
    p.add_argument("--kinds", default="request", help="comma-separated among request,stream")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of each window (idle, load)")
    p.add_argument(
        "--pause-ms",
        type=int,
        default=0,
        help="each connection pauses this long between requests (a lower rate: with a run at full rate, separates "
        "per-request work from per-second work, see tests/bench/README.md)",
    )
    p.add_argument(
        "--shadow-rate",
        type=float,
        help="the shadow sample rate of the rows that shadow (default: the feature report's, 10%%); at 1.0 the "
        "shadow row less the defaults is what a shadowed request costs, see tests/bench/README.md",
    )
    p.add_argument("--json", type=Path, help="also write the counts as JSON here")
    a = p.parse_args()
    rows = a.rows.split(",")
    if unknown := [r for r in rows if r not in targets.FEATURE_ROWS]:
        p.error(f"unknown rows {unknown}")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        p.error("needs valgrind and callgrind_control (apt-get install valgrind)")
    if "defaults" not in rows:
        rows.insert(0, "defaults")
    trees = [Path(t).resolve() for t in a.trees.split(",")]
    for tree in trees:
        procs.compile_bytecode(tree)
    with tempfile.TemporaryDirectory(prefix="pointsman-instr-") as work:
        counts = asyncio.run(
            measure(trees, rows, a.kinds.split(","), a.seconds, Path(work), a.pause_ms, a.shadow_rate)
        )
    print(table(counts, trees))
    if a.json:
        a.json.write_text(json.dumps([asdict(c) for c in counts], indent=1))


if __name__ == "__main__":
    main()
