"""Two source trees of pointsman, measured in one run: CPU per request and per stream, and closed-loop throughput.

    python -m tests.bench.ab OLD_TREE NEW_TREE [--rounds 3] [--seconds 4] [--feature ROW]

Each tree is a checkout of this repository (``git worktree add --detach /tmp/old <rev>`` makes one); its code runs
with ``PYTHONPATH`` set to it, under this interpreter. The bench's set-up: nginx serving the fixed answers and wrk
on one core, ``pointsman serve`` (one worker, the bench's config) on the other. Rounds alternate which tree goes
first; figures are medians, and the last line gives new / old. It is how a change to the request path is judged
before the full bench (``python -m tests.bench.run``) measures it against the plain pass-through and the peers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from tests.bench import procs, targets, upstream, wrk
from tests.bench.measure import GATEWAY_CPU, LOAD_CPU
from tests.fakes.telemetry import FakeTelemetry
from tests.redis_server import RedisServer

_KINDS = {"request": False, "stream": True}


async def _serve(
    tree: Path,
    up: upstream.Upstream,
    home: Path,
    features: targets.Features | None,
    launcher: Sequence[str] = (),
    start_s: float = 20.0,
) -> tuple[subprocess.Popen[bytes], int]:
    """``tree``'s ``pointsman serve`` with the bench's config (and ``features``), pinned to the gateway's core, run
    under ``launcher`` (a command prefix, e.g. valgrind's) when one is given; waits up to ``start_s`` for its port."""
    port = procs.free_port()
    home.mkdir(parents=True, exist_ok=True)
    doc = targets.pointsman_config(up, port, 0, features)
    doc["server"]["data_dir"] = str(home / "data")
    (home / "pointsman.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(home / "pointsman.yaml")]
    argv += ["--port", str(port), "--workers", "1"]
    argv = [*launcher, *argv]
    proc = procs.spawn(procs.pinned(GATEWAY_CPU, argv), home / "pointsman.log", env={"PYTHONPATH": str(tree)})
    for _ in range(int(start_s / 0.05)):
        if proc.poll() is not None:
            raise RuntimeError(f"pointsman from {tree} exited; see {home / 'pointsman.log'}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc, port
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"pointsman from {tree} did not start within {start_s:g} s")


async def _measure(
    trees: list[Path], rounds: int, seconds: float, work: Path, row: str | None = None
) -> dict[Path, dict[str, list[float]]]:
    up = await upstream.start(work / "nginx", LOAD_CPU)
    sink = FakeTelemetry(decode=False).start() if row in ("tracing", "all") else None
    # a Redis per tree: each gateway copies the shared ledger rows of the others it finds there
    redis = {t: RedisServer().start() for t in trees} if row in targets.REDIS_ROWS else {}
    features = {
        t: targets.features_of(row, sink.url if sink else None, redis[t].url if t in redis else None)
        if row
        else None
        for t in trees
    }
    scripts = {kind: wrk.write_script(work / f"{kind}.lua", stream=s) for kind, s in _KINDS.items()}
    out: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}
    try:
        for r in range(rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                proc, port = await _serve(tree, up, work / f"tree{trees.index(tree)}", features[tree])
                try:
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    for kind in _KINDS:
                        await wrk.run(url, scripts[kind], duration_s=1, connections=64, cpu=LOAD_CPU)
                        cpu0 = procs.cpu_seconds(proc.pid)
                        res = await wrk.run(
                            url, scripts[kind], duration_s=seconds, connections=64, cpu=LOAD_CPU
                        )
                        cpu = procs.cpu_seconds(proc.pid) - cpu0
                        if res.status_errors or res.socket_errors or not res.ok:
                            raise RuntimeError(f"{tree}: {kind}s failed ({res})")
                        out[tree].setdefault(f"{kind}_cpu_us", []).append(cpu / res.ok * 1e6)
                        out[tree].setdefault(f"{kind}s_per_s", []).append(res.ok_per_s)
                finally:
                    await procs.stop(proc)
    finally:
        await procs.stop(up.proc)
        if sink is not None:
            sink.stop()
        for server in redis.values():
            server.stop()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path, help="the baseline tree")
    p.add_argument("new", type=Path, help="the tree with the change")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each measuring both trees (default 3)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of load per tree, kind and round")
    p.add_argument(
        "--feature",
        choices=[r for r in targets.FEATURE_ROWS if r != "defaults"],
        help="measure both trees with this feature row's config (tests/bench/README.md) instead of the defaults",
    )
    a = p.parse_args()
    trees = [a.old.resolve(), a.new.resolve()]
    for tree in trees:  # both as installed (procs.compile_bytecode)
        procs.compile_bytecode(tree)
    with tempfile.TemporaryDirectory(prefix="pointsman-ab-") as work:
        res = asyncio.run(_measure(trees, a.rounds, a.seconds, Path(work), a.feature))
    med = {t: {k: statistics.median(v) for k, v in res[t].items()} for t in trees}
    for t in trees:
        m = med[t]
        print(
            f"{t}: {m['request_cpu_us']:.1f} µs CPU per request ({m['requests_per_s']:,.0f}/s), "
            f"{m['stream_cpu_us']:.1f} µs per stream ({m['streams_per_s']:,.0f}/s)"
        )
    old, new = med[trees[0]], med[trees[1]]
    print(
        f"new / old: CPU per request {new['request_cpu_us'] / old['request_cpu_us']:.3f}x, "
        f"per stream {new['stream_cpu_us'] / old['stream_cpu_us']:.3f}x"
    )


if __name__ == "__main__":
    main()
