"""Does data capture slow requests? pointsman with capture at 100% vs capture off, measured in the same run.

    python -m tests.bench.capture_bench [--rounds N] [--quick] [--json PATH]
    python -m tests.bench.capture_bench --micro      # in-process: offer() cost on the request path, writer cost

Both gateways get the same config (the gateway benchmark's: nginx upstream, key ``sk-bench`` of team
``perf``) and the same catch-all route for the bench models; on ``capture`` that route carries
``capture: {sample_rate: 1.0}`` (all built-in detectors) and team ``perf`` is approved for capture (seeded into
its capture store before it starts), so every successful request is queued, redacted and written to SQLite.
Each round runs the gateway benchmark's phases (``tests/bench/measure.py``: cold start, wrk throughput for
non-streaming and streaming, open-loop latency at 200 req/s, streaming TTFB at 50 streams/s) against nginx
directly and both gateways, target order rotating. After a round the capture store and the spend ledger of the
``capture`` gateway are compared: how many of the requests it served were stored (the rest were dropped
because the bounded queue was full: capture sheds load rather than slow requests down).

Checks for the ``capture`` gateway (the core's targets, docs/design.md and tests/bench/README.md): added latency
vs direct p50 <= 1 ms and p99 <= 3 ms, streaming TTFB added p50 <= 1 ms; and, in the same run, throughput
>= 0.8x and latency p99 within 1 ms of the ``off`` gateway. Exit status 0 when the bench ran, 2 when a target
failed to start or to answer.

``--micro`` measures, in one process and without load generators (so it holds up on a busy machine): the
request path's cost of ``CaptureGate.offer`` with capture at 100% (sampled, approved, queued) and with no policy,
and the background writer's CPU time per trace (rebuild, redact, serialize, write) for non-streamed and
streamed answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop
import yaml

from accounting.approvals import store as approvals_store
from tests.bench import fixtures, measure, procs, report, targets, upstream
from tests.bench.measure import LOAD_CPU, QUICK, Settings
from tests.bench.report import Figures
from tests.bench.targets import DIRECT, Gateway
from tests.bench.upstream import Upstream

OFF, CAPTURE = "off", "capture"
T = TypeVar("T")
ROWS = (
    ("rps", "non-streaming max req/s (wrk, 64 conn)", "{:,.0f}"),
    ("rps_cpu_us", "  CPU µs per request", "{:,.0f}"),
    ("sps", "streaming max streams/s (wrk, 64 conn)", "{:,.0f}"),
    ("sps_cpu_us", "  CPU µs per stream", "{:,.0f}"),
    ("lat_p50_ms", "latency p50 at 200 req/s (ms)", "{:.2f}"),
    ("lat_p99_ms", "latency p99 at 200 req/s (ms)", "{:.2f}"),
    ("added_p50_ms", "  added p50 vs direct (ms)", "{:.2f}"),
    ("added_p99_ms", "  added p99 vs direct (ms)", "{:.2f}"),
    ("ttfb_p50_ms", "stream TTFB p50 at 50/s (ms)", "{:.2f}"),
    ("ttfb_p99_ms", "stream TTFB p99 at 50/s (ms)", "{:.2f}"),
    ("added_ttfb_p50_ms", "  added TTFB p50 vs direct (ms)", "{:.2f}"),
    ("rss_mb", "RSS after load (MB)", "{:.0f}"),
    ("captured", "traces stored", "{:,.0f}"),
    ("served", "requests served (ledger)", "{:,.0f}"),
    ("captured_pct", "  stored / served (%)", "{:.1f}"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds; figures are medians")
    p.add_argument("--quick", action="store_true", help="short phases, for smoke runs (noisy figures)")
    p.add_argument("--json", type=Path, help="also write every round's figures and the medians as JSON")
    p.add_argument("--pointsman-bin", type=Path, default=Path(sys.executable).with_name("pointsman"))
    p.add_argument("--micro", action="store_true", help="in-process: offer() cost and writer cost per trace")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if not args.micro and not args.pointsman_bin.exists():
        p.error(f"{args.pointsman_bin} not found (pip install -e . first)")
    return args


def config(up: Upstream, port: int, data_dir: Path, capture: bool) -> dict[str, Any]:
    cfg = targets.pointsman_config(up, port, 0)
    cfg["server"]["data_dir"] = str(data_dir)
    route: dict[str, Any] = {"name": "bench", "match": {"model": "bench-*"}, "targets": []}
    if capture:
        route["capture"] = {"sample_rate": 1.0, "redact": ["builtin"], "retain_days": 1}
    cfg["routes"] = [route]
    return cfg


def gateway(name: str, up: Upstream, binary: Path, workdir: Path, capture: bool) -> tuple[Gateway, Path]:
    port = procs.free_port()
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    path = home / "pointsman.yaml"
    path.write_text(yaml.safe_dump(config(up, port, home / "data", capture), sort_keys=False))
    argv = (str(binary), "serve", "--config", str(path), "--port", str(port), "--workers", "1")
    return Gateway(name, argv, port), home / "data"


def reset(data_dir: Path, approve: bool) -> None:
    """A fresh data directory per round; on the capture gateway, team ``perf`` approved before it starts."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    if approve:
        approvals = approvals_store.SqliteApprovals(str(data_dir / "capture.sqlite3"))
        approvals.set_approval(
            approvals_store.CAPTURE,
            approvals_store.TEAM,
            "perf",
            True,
            "capture_bench",
            "benchmark",
            time.time(),
        )


def coverage(data_dir: Path) -> dict[str, float]:
    """Traces stored vs successful requests in the ledger (both flushed when the gateway stopped)."""
    served = captured = 0
    ledger = data_dir / "ledger.sqlite3"
    if ledger.exists():
        with contextlib.closing(sqlite3.connect(ledger)) as c:
            served = c.execute(
                "SELECT COUNT(*) FROM requests WHERE outcome = 'ok' AND shadow = 0"
            ).fetchone()[0]
    db = data_dir / "capture.sqlite3"
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as c:
            captured = c.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    return {
        "served": served,
        "captured": captured,
        "captured_pct": 100.0 * captured / served if served else 0.0,
    }


async def bench(args: argparse.Namespace, settings: Settings, workdir: Path) -> list[Figures]:
    up = await upstream.start(workdir / "nginx", LOAD_CPU if settings.pin else None)
    try:
        off, off_dir = gateway(OFF, up, args.pointsman_bin, workdir, capture=False)
        cap, cap_dir = gateway(CAPTURE, up, args.pointsman_bin, workdir, capture=True)
        rounds: list[Figures] = []
        for i in range(args.rounds):
            _log(f"round {i + 1}/{args.rounds}")
            reset(off_dir, approve=False)
            reset(cap_dir, approve=True)
            load = procs.BackgroundLoad()
            figures = await measure.run_round(i, settings, targets.direct(up), [off, cap], workdir, _log)
            figures[CAPTURE].update(coverage(cap_dir))
            figures[OFF].update(coverage(off_dir))
            figures[DIRECT]["background_cores"] = load.cores()
            _log(
                f"  capture stored {figures[CAPTURE]['captured']:,.0f} of {figures[CAPTURE]['served']:,.0f} "
                f"requests; other processes used {load.cores():.2f} cores"
            )
            rounds.append(figures)
        return rounds
    finally:
        await procs.stop(up.proc)


def checks(s: Figures) -> list[tuple[str, bool, str]]:
    c, o = s[CAPTURE], s[OFF]
    return [
        ("capture: added latency p50 <= 1 ms", c["added_p50_ms"] <= 1.0, f"{c['added_p50_ms']:.2f} ms"),
        ("capture: added latency p99 <= 3 ms", c["added_p99_ms"] <= 3.0, f"{c['added_p99_ms']:.2f} ms"),
        (
            "capture: added TTFB p50 <= 1 ms",
            c["added_ttfb_p50_ms"] <= 1.0,
            f"{c['added_ttfb_p50_ms']:.2f} ms",
        ),
        ("capture vs off: req/s >= 0.8x", c["rps"] >= 0.8 * o["rps"], f"{c['rps'] / o['rps']:.2f}x"),
        ("capture vs off: streams/s >= 0.8x", c["sps"] >= 0.8 * o["sps"], f"{c['sps'] / o['sps']:.2f}x"),
        (
            "capture vs off: latency p99 within 1 ms",
            c["lat_p99_ms"] - o["lat_p99_ms"] <= 1.0,
            f"{c['lat_p99_ms'] - o['lat_p99_ms']:+.2f} ms",
        ),
        ("capture stored what it served at 200 req/s", c["captured"] > 0, f"{c['captured']:,.0f} traces"),
    ]


def table(s: Figures) -> str:
    names = (DIRECT, OFF, CAPTURE)
    lines = [f"{'':44s}" + "".join(f"{n:>12s}" for n in names) + f"{'capture/off':>13s}"]
    for key, label, fmt in ROWS:
        cells = []
        for n in names:
            v = s.get(n, {}).get(key)
            cells.append(
                f"{fmt.format(v):>12s}"
                if v is not None and (n != DIRECT or key not in ("captured", "served", "captured_pct"))
                else f"{'':>12s}"
            )
        o, c = s[OFF].get(key), s[CAPTURE].get(key)
        ratio = (
            f"{c / o:>12.2f}x"
            if o and c is not None and key in ("rps", "sps", "lat_p50_ms", "lat_p99_ms")
            else f"{'':>13s}"
        )
        lines.append(f"{label:44s}" + "".join(cells) + ratio)
    return "\n".join(lines)


async def _stoppable(coro: Coroutine[Any, Any, T]) -> T:
    task, loop = asyncio.current_task(), asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    return await coro


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _micro_inputs() -> tuple[Any, Any, dict[str, Any], dict[str, Any], list[bytes]]:
    from gateway.config import validate_document

    doc = {
        "backends": {"up": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"bench-*": {"backend": "up"}},
        "keys": [{"name": "bench", "key": fixtures.API_KEY, "team": "perf"}],
        "routes": [
            {"name": "cap", "match": {"tags": {"task": "cap"}}, "capture": {"sample_rate": 1.0}},
            {"name": "bench", "match": {"model": "bench-*"}},
        ],
    }
    request = json.loads(fixtures.request_body(stream=False))
    response = json.loads(fixtures.completion_body())
    events = [e.encode() + b"\n\n" for e in fixtures.sse_body().split("\n\n") if e]
    return validate_document(doc, "<bench>"), request, request, response, events


async def micro(n: int = 20_000) -> dict[str, float]:
    """See the module docstring (``--micro``)."""
    import timeit

    from accounting.record import RequestRecord
    from gateway.accounting_setup import build_accountant
    from gateway.capture import CaptureGate
    from routing.eligibility import ThirdPartyConsent
    from routing.models import ModelTable
    from routing.policy import Policy
    from routing.rules import RouteInput

    cfg, _, request, response, events = _micro_inputs()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pointsman-capture-micro-") as tmp:
        cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update={"data_dir": tmp})})
        consent = ThirdPartyConsent(frozenset(), False, None)
        gate = CaptureGate(cfg, build_accountant(cfg), lambda: cfg, lambda: consent)
        policy = Policy(cfg.routes, ModelTable(cfg.models))
        svc = gate.service
        svc.store.open()
        await svc.set_approval("perf", True, "bench", None)

        def rec(i: int, route: str, stream: bool = False) -> RequestRecord:
            return RequestRecord(
                request_id=f"r{i}",
                ts=time.time(),
                key="bench",
                team="perf",
                task=None,
                route=route,
                requested_model="bench-model",
                endpoint="chat/completions",
                stream=stream,
                upstream_model="gpt-4o-mini",
                backend="up",
                status=200,
            )

        on = policy.decide(RouteInput("bench-model", {"task": "cap"}, "bench", "perf"))
        off = policy.decide(RouteInput("bench-model", {}, "bench", "perf"))
        r_on, r_off = rec(0, "cap"), rec(0, "bench")
        for name, d, r in (("offer_off_us", off, r_off), ("offer_on_us", on, r_on)):
            best = min(
                timeit.repeat(lambda d=d, r=r: gate.offer(r, d, request, response), number=n, repeat=5)
            )
            out[name] = best / n * 1e6
            svc._queue.clear()
        for name, stream in (("writer_us_per_trace", False), ("writer_us_per_stream_trace", True)):
            for i in range(n):
                if stream:
                    svc.offer(rec(i, "cap", True), cfg.routes[0].capture, request, None, events)
                else:
                    svc.offer(rec(i, "cap"), cfg.routes[0].capture, request, response)
            cpu0, t0 = time.thread_time(), time.perf_counter()
            while svc._queue:
                svc._write_batch()
            out[name] = (time.perf_counter() - t0) / n * 1e6
            out[name.replace("_us_", "_cpu_us_")] = (time.thread_time() - cpu0) / n * 1e6
            svc.store.purge_expired(time.time() + 10 * 86400)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.micro:
        figures = asyncio.run(micro())
        for k, v in figures.items():
            print(f"{k:32s} {v:9.2f}")
        if args.json:
            args.json.write_text(json.dumps({"micro": figures}, indent=2))
        return 0
    missing = [t for t in ("nginx", "wrk", "taskset") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (apt-get install nginx wrk util-linux)")
    settings = QUICK if args.quick else Settings()
    if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        _log("note: CPUs 0 and 1 not both available, running unpinned")
        settings = dataclasses.replace(settings, pin=False)
    else:
        os.sched_setaffinity(0, {LOAD_CPU})
    with tempfile.TemporaryDirectory(prefix="pointsman-capture-bench-") as tmp:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                rounds = runner.run(_stoppable(bench(args, settings, Path(tmp))))
        except RuntimeError as exc:
            _log(f"bench failed: {exc}")
            for log in sorted(Path(tmp).glob("*.log")):
                _log(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            return 2
    summary = report.aggregate(rounds)
    print(table(summary))
    print()
    for name, ok, value in checks(summary):
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")
    bg = summary[DIRECT].get("background_cores", 0.0)
    if bg > 0.05:
        print(
            f"\nnote: other processes used {bg:.2f} cores during the run: figures are unreliable; rerun when quiet"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rounds": rounds, "summary": summary, "settings": dataclasses.asdict(settings)},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
