"""Benchmark pointsman against nginx directly and a plain FastAPI + aiohttp pass-through proxy.

    python -m tests.bench.run [--rounds N] [--rules N] [--json PATH] [--quick] [--only plain,pointsman] [--tracing]
                              [--features [ROWS]] [--profile-s S] [--peers litellm,portkey] [--markdown README.md]

See tests/bench/README.md for the method and what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from gateway.build import PACKAGES, compiled_modules
from tests.bench import (
    interpreter,
    measure,
    metrics_scrape,
    peers,
    phases,
    procs,
    readme,
    report,
    scaling,
    targets,
    upstream,
)
from tests.bench.measure import LOAD_CPU, QUICK, Settings
from tests.bench.report import Figures
from tests.bench.targets import FEATURE_ROWS, GATEWAYS, PLAIN, POINTSMAN, REDIS_ROWS
from tests.fakes.telemetry import FakeTelemetry
from tests.redis_server import RedisServer

T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; figures are medians")
    parser.add_argument(
        "--rules", type=int, default=0, help="pointsman: N non-matching route rules (0: none)"
    )
    parser.add_argument("--json", type=Path, help="also write all figures as JSON here")
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="pointsman: export OpenTelemetry traces at 100%% sampling to a local OTLP sink",
    )
    parser.add_argument(
        "--features",
        nargs="?",
        const=",".join(FEATURE_ROWS),
        default=None,
        help="also measure pointsman's feature rows (CPU per request and stream vs the defaults, same round): "
        f"comma-separated among {','.join(FEATURE_ROWS)}; default: all of them",
    )
    parser.add_argument(
        "--profile-features",
        action="store_true",
        help="with --features: the per-phase profile of every feature row too (where each feature's CPU goes)",
    )
    parser.add_argument(
        "--scrape-workers",
        type=int,
        default=4,
        help="the /metrics scrape check: pointsman with this many workers and --scrape-series series (0: skip)",
    )
    parser.add_argument("--scrape-series", type=int, default=10_000, help="series for the scrape check")
    parser.add_argument(
        "--scale-workers",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[],
        help="worker scaling: pointsman's non-streaming req/s with each of these --workers counts, unpinned "
        "(comma-separated, e.g. 1,2,4)",
    )
    parser.add_argument(
        "--peers",
        default="",
        help=f"also measure other gateways as targets, comma-separated among {','.join(peers.PEERS)}; each is "
        "installed into its own directory under --peers-dir the first time",
    )
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=peers.DEFAULT_CACHE,
        help="where the peers are installed (default: .cache/bench-peers/ in the repository, gitignored)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the run's working files here (configs, logs, wrk scripts, each kind's profile dump "
        "<target>.<rps|sps>.profile.json) instead of a temporary directory removed at the end",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="also write the results as Markdown here; a file with <!-- bench:start --> and <!-- bench:end --> "
        "markers (README.md) gets the text between them replaced",
    )
    parser.add_argument("--quick", action="store_true", help="short phases, for smoke runs (noisy figures)")
    parser.add_argument(
        "--no-awake",
        action="store_true",
        help="skip the latency and TTFB phases repeated with the CPUs kept awake (tests/bench/README.md)",
    )
    parser.add_argument(
        "--profile-s",
        type=float,
        default=None,
        help="seconds of sampled load per target and kind for the per-phase profile (default 6, quick 2; 0: none)",
    )
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated gateways among {','.join(GATEWAYS)} (nginx direct is always measured); "
        "default: both, or plain alone when the pointsman binary is missing",
    )
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="measure pointsman as the image ships it, its request path compiled with mypyc: a compiled copy of "
        "this checkout is built first (scripts/compiled_tree.sh, into .cache/bench-compiled, ~9 minutes for 64 modules) and "
        "every pointsman the bench starts imports it (PYTHONPATH)",
    )
    parser.add_argument(
        "--python",
        default=None,
        help="run the Python targets (pointsman, the plain pass-through, LiteLLM's proxy) under this interpreter: "
        "the bench makes a virtual environment of it under .cache/bench-venv/ with this checkout and the running "
        "environment's package versions, and runs itself again from there (tests/bench/interpreter.py; the image "
        "runs an optimized CPython, e.g. /usr/bin/python3.11 here, where pyenv's is not)",
    )
    parser.add_argument(
        "--pointsman-bin",
        type=Path,
        default=Path(sys.executable).with_name("pointsman"),
        help="the pointsman console script (default: next to this Python)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown_peers = sorted(set(args.peers) - set(peers.PEERS))
    if unknown_peers:
        parser.error(f"--peers: unknown peer(s) {unknown_peers}; choose among {list(peers.PEERS)}")
    if args.features is not None:
        rows = [r.strip() for r in args.features.split(",") if r.strip()]
        unknown = sorted(set(rows) - set(FEATURE_ROWS))
        if unknown:
            parser.error(f"--features: unknown row(s) {unknown}; choose among {list(FEATURE_ROWS)}")
        if "defaults" not in rows:
            rows.insert(0, "defaults")  # the reference every row is compared with
        args.features = [r for r in FEATURE_ROWS if r in rows]
        if not args.pointsman_bin.exists():
            parser.error(f"--features: {args.pointsman_bin} not found (pip install -e . first)")
    return args


def choose_gateways(only: str | None, binary: Path) -> list[str]:
    if only is None:
        if binary.exists():
            return list(GATEWAYS)
        print(f"note: {binary} not found, measuring plain only", file=sys.stderr)
        return [PLAIN]
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(GATEWAYS))
    if unknown:
        raise SystemExit(f"--only: unknown gateway(s) {unknown}; choose among {GATEWAYS}")
    if POINTSMAN in names and not binary.exists():
        raise SystemExit(f"--only pointsman: {binary} not found (pip install -e . first)")
    return [n for n in GATEWAYS if n in names]


def check_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (apt-get install nginx wrk util-linux)")


@dataclasses.dataclass
class Outcome:
    rounds: list[Figures] = dataclasses.field(default_factory=list)
    background: list[float] = dataclasses.field(default_factory=list)  # other processes' CPU, cores
    scrape: dict[str, Any] | None = None  # the /metrics scrape check (metrics_scrape.py)
    scaling: dict[str, Any] | None = None  # worker scaling (scaling.py)
    load_avg: list[float] = dataclasses.field(default_factory=list)  # 1-minute load average after each round
    steal: list[float] = dataclasses.field(default_factory=list)  # cores the hypervisor took, per round
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)  # peers that could not be installed
    error: str | None = None  # why the run stopped before its last round


async def bench(args: argparse.Namespace, settings: Settings, names: list[str], workdir: Path) -> Outcome:
    """All rounds; a round that fails after others completed ends the run with what it has."""
    rows: list[str] = args.features or []
    tree: Path | None = args.compiled_tree
    if POINTSMAN in names or rows:  # measured as installed: its bytecode compiled (procs.compile_bytecode)
        procs.compile_bytecode(tree or _ROOT, targets.interpreter_of(args.pointsman_bin))
    up = await upstream.start(workdir / "nginx", LOAD_CPU if settings.pin else None)
    wants_sink = args.tracing or any(r in ("tracing", "all") for r in rows)
    sink = FakeTelemetry(decode=False).start() if wants_sink else None
    # A Redis per row that uses one: a gateway copies the shared ledger stream's rows of other replicas into its
    # own ledger, and with one Redis the `all` row copied the `redis` row's (a stopped gateway's) rows while
    # measured, and the other way round in the next round.
    redis = {r: RedisServer().start() for r in rows if r in REDIS_ROWS}
    try:
        gateways = [
            targets.plain(up)
            if name == PLAIN
            else targets.pointsman(
                up,
                args.pointsman_bin,
                workdir,
                args.rules,
                sink.url if sink is not None and args.tracing else None,
                tree=tree,
            )
            for name in names
        ]
        out = Outcome()
        for name in args.peers:
            try:
                gateways.append(_peer(name, up, args.peers_dir, workdir))
            except peers.PeerUnavailable as exc:
                out.unavailable[name] = str(exc)
                _log(f"{name}: not measured: {exc}")
        feature_rows = [
            targets.pointsman(
                up,
                args.pointsman_bin,
                workdir,
                0,
                features=targets.features_of(
                    row, sink.url if sink is not None else None, redis[row].url if row in redis else None
                ),
                name=targets.feature_name(row),
                tree=tree,
            )
            for row in rows
        ]
        for i in range(args.rounds):
            _log(f"round {i + 1}/{args.rounds}")
            load = procs.BackgroundLoad()
            try:
                figures = await measure.run_round(i, settings, targets.direct(up), gateways, workdir, _log)
                if feature_rows:
                    _log("  feature rows:")
                    figures.update(
                        await measure.run_features(
                            i, settings, feature_rows, workdir, _log, profile=args.profile_features
                        )
                    )
            except RuntimeError as exc:
                if not out.rounds:
                    raise
                out.error = f"round {i + 1} failed: {exc}"
                _log(out.error)
                _dump_logs(workdir)
                break
            out.rounds.append(figures)
            out.background.append(load.cores())
            out.steal.append(load.stolen())
            out.load_avg.append(float(Path("/proc/loadavg").read_text().split()[0]))
            _log(
                f"  other processes used {out.background[-1]:.2f} cores during the round, "
                f"the hypervisor took {out.steal[-1]:.2f} (steal time)"
            )
        if sink is not None:
            _log(f"  the OTLP sink received {sink.span_bytes} bytes in {sink.requests} exports")
        if args.scrape_workers > 0 and POINTSMAN in names and not out.error:
            _log(f"/metrics scrape: {args.scrape_workers} workers, {args.scrape_series:,} series")
            try:
                out.scrape = await metrics_scrape.measure(
                    up,
                    args.pointsman_bin,
                    workdir,
                    workers=args.scrape_workers,
                    series=args.scrape_series,
                    scrapes=5 if args.quick else 20,
                    cpu=measure.GATEWAY_CPU if settings.pin else None,
                    log=_log,
                    tree=tree,
                )
            except RuntimeError as exc:
                out.error = f"the scrape check failed: {exc}"
                _log(out.error)
        if args.scale_workers and POINTSMAN in names and not out.error:
            _log(f"worker scaling: {', '.join(map(str, args.scale_workers))} workers")
            main_gw = next(g for g in gateways if g.name == POINTSMAN)
            try:
                out.scaling = await scaling.measure_scaling(
                    main_gw, args.scale_workers, settings, workdir, _log
                )
            except RuntimeError as exc:
                out.error = f"the worker scaling failed: {exc}"
                _log(out.error)
        return out
    finally:
        await procs.stop(up.proc)
        if sink is not None:
            sink.stop()
        for server in redis.values():
            server.stop()


def _peer(name: str, up: upstream.Upstream, cache: Path, workdir: Path) -> targets.Gateway:
    if name == peers.LITELLM:
        return peers.litellm(up, peers.ensure_litellm(cache, _log), workdir)
    return peers.portkey(up, peers.ensure_portkey(cache, _log))


async def _stoppable(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``, turning SIGTERM and SIGHUP into a cancellation (as asyncio.Runner does for
    SIGINT), so the ``finally`` blocks that stop nginx and the gateways run."""
    task, loop = asyncio.current_task(), asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    return await coro


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def pin_self(settings: Settings) -> Settings:
    """The load generator (this process, wrk, nginx) on CPU 0; gateways go on CPU 1."""
    if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        print("note: CPUs 0 and 1 not both available, running unpinned", file=sys.stderr)
        return dataclasses.replace(settings, pin=False)
    os.sched_setaffinity(0, {LOAD_CPU})
    return settings


def meta(args: argparse.Namespace, settings: Settings, names: list[str]) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "interpreter": interpreter.describe(),
        "gateways": names,
        "rounds": args.rounds,
        "rules": args.rules,
        "tracing": args.tracing,
        "features": {row: FEATURE_ROWS[row] for row in args.features or []},
        "peers": {name: peers.version(name, args.peers_dir) for name in args.peers},
        "argv": sys.argv[1:],
        "quick": args.quick,
        "settings": dataclasses.asdict(settings),
        "phases": {p.key: p.label for p in phases.PHASES},
        "git": _git_state(),
        "build": _build(args.compiled_tree),
    }


def _build(tree: Path | None) -> str:
    """How the pointsman measured was built: from its Python sources, or compiled (``--compiled``)."""
    if tree is None:
        return "Python sources"
    n = len(compiled_modules({p: tree / p for p in PACKAGES}))
    return f"compiled with mypyc ({n} modules, scripts/compiled_tree.sh)"


def build_compiled(dest: Path) -> Path:
    """A compiled copy of this checkout at ``dest`` (``scripts/compiled_tree.sh``)."""
    _log(f"building the compiled tree at {dest}")
    env = os.environ | {"VENV": sys.prefix}  # built by the interpreter that runs it (--python)
    subprocess.run(["bash", str(_ROOT / "scripts" / "compiled_tree.sh"), str(dest)], check=True, env=env)
    return dest


_ROOT = Path(__file__).resolve().parents[2]


def _git_state() -> dict[str, Any]:
    """HEAD and the files that differ from it: the gateway measured is the working tree."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_ROOT, capture_output=True, text=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=_ROOT, capture_output=True, text=True)
    except OSError:
        return {}
    return {"head": head.stdout.strip(), "changed": [line[3:] for line in status.stdout.splitlines()]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools()
    if args.python is not None:
        venv = interpreter.venv_of(args.python)
        if not interpreter.running_in(venv):
            interpreter.ensure(args.python, venv, _log)
            command = interpreter.reexec_argv(venv, sys.argv[1:] if argv is None else argv)
            _log(f"running again under {args.python}: {venv}")
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(command[0], command)
    names = choose_gateways(args.only, args.pointsman_bin)
    args.compiled_tree = build_compiled(_ROOT / ".cache" / "bench-compiled") if args.compiled else None
    settings = QUICK if args.quick else Settings()
    if args.profile_s is not None:
        settings = dataclasses.replace(settings, profile_s=max(0.0, args.profile_s))
    if args.no_awake:
        settings = dataclasses.replace(settings, awake=False)
    settings = pin_self(settings)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.nullcontext(str(args.keep))
        if args.keep is not None
        else tempfile.TemporaryDirectory(prefix="pointsman-bench-")
    ) as tmp:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                out = runner.run(_stoppable(bench(args, settings, names, Path(tmp))))
        except RuntimeError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            _dump_logs(Path(tmp))
            return 2
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted; everything the bench started is stopped", file=sys.stderr)
            return 130
    summary = report.aggregate(out.rounds)
    print()
    if out.error:
        print(f"INCOMPLETE: {len(out.rounds)} of {args.rounds} rounds ({out.error.splitlines()[0]})")
    print(report.table(summary, (settings.rate, settings.stream_rate)))
    for note in report.rate_notes(summary, settings.rate, settings.stream_rate):
        print(f"  note: {note}")
    print()
    features = report.features_text(summary)
    if features:
        print(features)
        print()
    profile = report.profile_text(summary)
    if profile:
        print(profile)
        print()
    if out.scrape is not None:
        print(metrics_scrape.text(out.scrape))
        print()
    if out.scaling is not None:
        print(report.scaling_text(out.scaling))
        print()
    failures = report.failures_text(out.rounds, out.unavailable)
    if failures:
        print(failures)
        print()
    print(report.noise_text(out.background, summary, out.steal))
    print()
    print(report.checks_text(summary, quiet=report.machine_quiet(out.background, out.steal)))
    info = meta(args, settings, names) | {
        "background_cores_per_round": out.background,
        "steal_cores_per_round": out.steal,
        "load_avg_per_round": out.load_avg,
        "unavailable": out.unavailable,
        "scrape": out.scrape,
        "scaling": out.scaling,
        "error": out.error,
    }
    if args.json:
        report.write_json(args.json, info, out.rounds, summary)
        print(f"\nJSON: {args.json}")
    if args.markdown:
        readme.write_markdown(args.markdown, readme.markdown(info, out.rounds, summary))
        print(f"Markdown: {args.markdown}")
    return 2 if out.error else 0


def _dump_logs(workdir: Path, lines: int = 40) -> None:
    for log in sorted(workdir.rglob("*.log")) + sorted(workdir.rglob("*.out")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"--- {log.name} (last {len(tail)} lines)", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
