"""Where the compiled build's CPU goes, function by function: ``perf record`` with DWARF call graphs of pointsman
as the image ships it (the request path compiled with mypyc), under wrk load, per feature row.

    python -m tests.bench.native_profile [--rows defaults,all] [--tree DIR] [--kind request|stream]
                                         [--seconds 5] [--top 40] [--min-us 0.3]

The bench's per-phase profile (``tests/bench/phases.py``) samples Python frames with py-spy, and a function compiled
by mypyc has no Python frame: a ``--compiled`` run profiles the sources instead. perf samples the machine code, so
here each compiled function (a mypyc ``CPyDef_``/``CPyPy_`` symbol, named back to ``module.Class.method``) gets its
inclusive CPU per request: every sample whose call stack holds it, once per sample. Interpreted Python code (the
modules left uncompiled, the libraries) shows in perf only as the interpreter's own functions, so it is inside the
compiled callers' figures but not named; ``kernel`` is the samples whose innermost frame is in the kernel (system
calls, the loopback TCP stack, wake-ups).

Each row runs ``pointsman serve`` from ``--tree`` (default: a compiled copy of this checkout built into
``.cache/bench-compiled`` by ``scripts/compiled_tree.sh``, as ``run --compiled`` does) pinned to the gateway's core,
warms it up with wrk (64 connections), then records ``--seconds`` of load at 499 samples per second. CPU per request
is the samples' CPU time over the requests wrk completed meanwhile. Rows are those of the feature report
(``tests/bench/README.md``). Needs ``perf`` (``apt-get install linux-perf``) and a ``kernel.perf_event_paranoid``
that lets it record the process (``-1``, or run as root).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import ab, procs, targets, upstream, wrk
from tests.bench.measure import LOAD_CPU
from tests.fakes.telemetry import FakeTelemetry
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
FREQ = 499
"""Samples per second (prime, so it does not beat with the event loop's timers)."""
CONNECTIONS = 64
_HELPER = "_gen_____mypyc_generator_helper__"
_METHOD_OF_CLASS = re.compile(r"^(.*?)_(_?[A-Z]\w*)$")
KERNEL = "kernel"
"""The row's samples whose innermost frame is in the kernel."""


def compiled_names(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """The compiled modules' dotted names by their last component (how mypyc's symbols name them)."""
    with pyproject.open("rb") as f:
        paths: list[str] = tomllib.load(f)["tool"]["pointsman"]["compiled"]
    dotted = [p.removesuffix(".py").replace("/", ".") for p in paths]
    return {d.rpartition(".")[2]: d for d in dotted}


def demangle(symbol: str, modules: dict[str, str] | None = None) -> str | None:
    """``module.Class.method`` or ``module.function`` of a mypyc symbol (a native function ``CPyDef_``, its Python
    wrapper ``CPyPy_``, a coroutine's generator helper), or None for any other symbol (the runtime's, an object's
    clear/dealloc, the interpreter's). ``modules``: dotted names by last component (``compiled_names``)."""
    for prefix in ("CPyDef_", "CPyPy_"):
        if symbol.startswith(prefix):
            body = symbol[len(prefix) :]
            break
    else:
        return None
    module, sep, rest = body.partition("___")
    if not sep or not rest:
        return None
    full = (modules or {}).get(module, module)
    if rest.endswith(_HELPER):  # an ``async def``: ``<method>_<Class>`` or ``<function>``
        core = rest[: -len(_HELPER)]
        m = _METHOD_OF_CLASS.match(core)
        return f"{full}.{m.group(2)}.{m.group(1)}" if m else f"{full}.{core}"
    if "_gen_" in rest or rest.endswith(("_clear", "_dealloc", "_traverse", "_setup")):
        return None  # a generator object's or a class's bookkeeping
    cls, sep, meth = rest.partition("___")
    return f"{full}.{cls}.{meth}" if sep else f"{full}.{rest}"


def stacks(text: str) -> Iterator[list[tuple[str, bool]]]:
    """The call stacks of ``perf script -F ip,sym,dso`` output, innermost frame first: ``(symbol, in the kernel)``
    per frame."""
    cur: list[tuple[str, bool]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if cur:
                yield cur
            cur = []
            continue
        parts = line.split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""
        sym, sep, dso = rest.rpartition(" (")
        if not sep:
            sym, dso = rest, ""
        cur.append((sym.strip(), "kernel" in dso))
    if cur:
        yield cur


@dataclass
class Profile:
    row: str
    samples: int
    requests: int
    inclusive: Counter[str] = field(default_factory=Counter)
    """Samples whose stack holds each compiled function (once per sample), and ``KERNEL``'s."""

    def us_per_request(self, name: str | None = None) -> float:
        n = self.samples if name is None else self.inclusive.get(name, 0)
        return n * 1e6 / FREQ / self.requests if self.requests else 0.0


def profile(row: str, text: str, requests: int, modules: dict[str, str] | None = None) -> Profile:
    p = Profile(row, 0, requests)
    for st in stacks(text):
        p.samples += 1
        names = {n for sym, _ in st if (n := demangle(sym, modules)) is not None}
        if st[0][1]:
            names.add(KERNEL)
        p.inclusive.update(names)
    return p


def table(profiles: list[Profile], top: int, min_us: float) -> str:
    """One line per compiled function (the ``top`` with the most CPU per request in any row, at least ``min_us``):
    its inclusive µs per request in each row, and with more than one row, each row's difference from the first."""
    first = profiles[0]
    names = {n for p in profiles for n in p.inclusive}
    ranked = sorted(names, key=lambda n: -max(p.us_per_request(n) for p in profiles))
    shown = [n for n in ranked if max(p.us_per_request(n) for p in profiles) >= min_us][:top]
    width = max([len(n) for n in shown] + [24])
    head = f"{'µs per request':{width}s}" + "".join(f" {p.row:>10s}" for p in profiles)
    if len(profiles) > 1:
        head += "".join(f" {'Δ ' + p.row:>12s}" for p in profiles[1:])
    lines = [head, "-" * len(head)]

    def line(label: str, vals: Iterable[float]) -> str:
        v = list(vals)
        out = f"{label:{width}s}" + "".join(f" {x:10.1f}" for x in v)
        return out + "".join(f" {x - v[0]:+12.1f}" for x in v[1:])

    lines.append(line("total (all threads)", (p.us_per_request() for p in profiles)))
    lines.append(line("  of which in the kernel", (p.us_per_request(KERNEL) for p in profiles)))
    for n in shown:
        if n != KERNEL:
            lines.append(line(n, (p.us_per_request(n) for p in profiles)))
    lines += [
        "",
        "inclusive: a function's own CPU and all it calls, interpreted code included; rows: "
        + ", ".join(f"{p.row} {p.requests / max(p.samples / FREQ, 1e-9):,.0f} req/s" for p in profiles),
        f"(first row: {first.row}; {FREQ} samples/s of one worker pinned to one core)",
    ]
    return "\n".join(lines)


async def _record(
    tree: Path, row: str, kind: str, seconds: float, up: upstream.Upstream, sink: str, work: Path
) -> Profile:
    redis = RedisServer().start() if row in targets.REDIS_ROWS else None
    home = work / row
    try:
        features = None if row == "defaults" else targets.features_of(row, sink, redis.url if redis else None)
        proc, port = await ab._serve(tree, up, home, features)
        try:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            script = wrk.write_script(work / f"{kind}.lua", stream=kind == "stream")
            await wrk.run(url, script, duration_s=2, connections=CONNECTIONS, cpu=LOAD_CPU)
            load = asyncio.create_task(
                wrk.run(url, script, duration_s=seconds + 2, connections=CONNECTIONS, cpu=LOAD_CPU)
            )
            await asyncio.sleep(1)
            out = home / "perf.data"
            rec = await asyncio.create_subprocess_exec(
                "perf", "record", "-q", "-F", str(FREQ), "-e", "cpu-clock", "--call-graph", "dwarf,16384",
                "-p", str(proc.pid), "-o", str(out), "--", "sleep", str(seconds),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            _, err = await rec.communicate()
            res = await load
            if rec.returncode != 0 or not out.exists():
                raise RuntimeError(f"perf record failed: {err.decode(errors='replace')[-2000:]}")
            if res.status_errors or res.socket_errors:
                raise RuntimeError(f"[{row}] {kind}s failed under load ({res})")
        finally:
            await procs.stop(proc)
    finally:
        if redis is not None:
            redis.stop()
    script_out = subprocess.run(
        ["perf", "script", "-F", "ip,sym,dso", "-i", str(out)], capture_output=True, text=True, check=True
    ).stdout
    return profile(row, script_out, round(res.ok_per_s * seconds), compiled_names())


async def measure(tree: Path, rows: list[str], kind: str, seconds: float, work: Path) -> list[Profile]:
    up = await upstream.start(work / "nginx", LOAD_CPU)
    sink = FakeTelemetry(decode=False).start()
    out: list[Profile] = []
    try:
        for row in rows:
            out.append(await _record(tree, row, kind, seconds, up, sink.url, work))
            print(f"  {row}: {out[-1].samples} samples", file=sys.stderr, flush=True)
    finally:
        await procs.stop(up.proc)
        sink.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.bench.native_profile", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--rows", default="defaults,all", help="comma-separated among " + ",".join(targets.FEATURE_ROWS)
    )
    ap.add_argument("--tree", type=Path, help="a compiled tree (default: build .cache/bench-compiled)")
    ap.add_argument("--kind", choices=["request", "stream"], default="request")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--min-us", type=float, default=0.3)
    args = ap.parse_args(argv)
    rows = args.rows.split(",")
    if unknown := [r for r in rows if r not in targets.FEATURE_ROWS]:
        ap.error(f"unknown rows: {unknown}")
    if shutil.which("perf") is None:
        ap.error("needs perf on PATH (apt-get install linux-perf)")
    tree = args.tree
    if tree is None:
        tree = ROOT / ".cache" / "bench-compiled"
        subprocess.run(["bash", str(ROOT / "scripts" / "compiled_tree.sh"), str(tree)], check=True)
    with tempfile.TemporaryDirectory(prefix="pointsman-perf-") as work:
        profiles = asyncio.run(measure(tree.resolve(), rows, args.kind, args.seconds, Path(work)))
    print(table(profiles, args.top, args.min_us))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
