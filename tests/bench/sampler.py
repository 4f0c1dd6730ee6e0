"""A CPU-time sampling profiler that runs inside a gateway process, for the bench's per-phase profile.

    python tests/bench/sampler.py OUT.json -m gateway.cli serve --config CFG --port P --workers 1
    python tests/bench/sampler.py OUT.json path/to/script.py --port P ...

Runs the module (``-m``) or script as ``__main__`` with a dormant sampler installed. ``SIGUSR1`` starts sampling,
``SIGUSR2`` stops it and writes ``OUT.json``; the bench sends them around a load phase.

Samples are taken on ``SIGPROF`` from ``setitimer(ITIMER_PROF)``, a timer that runs on the process's CPU time
(user + system, all threads): a request that burns more CPU gets more samples, time spent waiting gets none.
The handler runs in the main thread at the next bytecode boundary, so the time of a C call (``orjson.loads``,
a socket write, SQLite) counts for the Python frame that made it, and CPU the event loop spends in C between
callbacks counts for the loop's own frames or the callback it runs next. Each sample records every thread's
Python stack; the bench spreads each thread's measured CPU time (``/proc/self/task``) over that thread's
non-idle stacks (``tests/bench/phases.py``).

Standard library only, and imported by nothing in the gateway: it must not change what it measures beyond the
handler's own cost, which it times (``sampler_cpu_s``) so that the bench can leave it out.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

INTERVAL_S = 0.001
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class Sampler:
    def __init__(self, out: Path, interval_s: float = INTERVAL_S) -> None:
        self.out = out
        self.interval_s = interval_s
        self.counts: dict[tuple[int, tuple[CodeType, ...]], int] = {}
        self.samples = 0
        self.own_s = 0.0  # CPU time spent in the handler
        self.t0 = 0.0
        self.cpu0: dict[int, tuple[str, float]] = {}
        self.proc0 = 0.0
        self.running = False

    def install(self) -> None:
        signal.signal(signal.SIGUSR1, self._start)
        signal.signal(signal.SIGUSR2, self._stop)
        signal.signal(signal.SIGPROF, self._sample)

    def _start(self, signum: int, frame: FrameType | None) -> None:
        self.counts.clear()
        self.samples = 0
        self.own_s = 0.0
        self.t0 = time.monotonic()
        self.cpu0 = _thread_cpu()
        self.proc0 = _process_cpu()
        self.running = True
        signal.setitimer(signal.ITIMER_PROF, self.interval_s, self.interval_s)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        if not self.running:
            return
        self.running = False
        wall = time.monotonic() - self.t0
        proc = _process_cpu() - self.proc0
        cpu1 = _thread_cpu()
        names = {t.ident: (t.native_id, t.name) for t in threading.enumerate()}
        main = threading.main_thread().ident
        threads: dict[int, dict[str, Any]] = {}
        for (ident, stack), n in self.counts.items():
            native, name = names.get(ident, (None, f"thread-{ident}"))
            entry = threads.setdefault(ident, {"name": name, "main": ident == main, "native_id": native})
            entry.setdefault("stacks", []).append([n, [_where(code) for code in stack]])
        for entry in threads.values():
            native = entry["native_id"]
            before = self.cpu0.get(native, ("", 0.0))[1] if native is not None else 0.0
            after = cpu1.get(native, ("", before))[1] if native is not None else before
            entry["cpu_s"] = max(0.0, after - before)
        seen = {e["native_id"] for e in threads.values()}
        for native, (comm, after) in cpu1.items():  # threads that used CPU without a Python stack
            used = after - self.cpu0.get(native, ("", 0.0))[1]
            if native not in seen and used > 0:
                threads[-native] = {
                    "name": comm,
                    "main": False,
                    "native_id": native,
                    "cpu_s": used,
                    "stacks": [],
                }
        doc = {
            "interval_s": self.interval_s,
            "wall_s": wall,
            "samples": self.samples,
            "process_cpu_s": proc,
            "sampler_cpu_s": self.own_s,
            "threads": list(threads.values()),
        }
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.out)

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        t = time.thread_time()
        if not self.running:
            return
        self.samples += 1
        counts = self.counts
        main = threading.main_thread().ident
        for ident, top in sys._current_frames().items():
            f = frame if ident == main else top  # the main thread's own frame is the interrupted one
            stack = []
            while f is not None:
                stack.append(f.f_code)
                f = f.f_back
            key = (ident, tuple(stack))
            counts[key] = counts.get(key, 0) + 1
        self.own_s += time.thread_time() - t


_MODULES: dict[str, str] = {}
_BY_FILE: dict[str, str] = {}
_SELF = __file__


def _where(code: CodeType) -> list[str]:
    """``[module, qualified name]`` of a code object (its file as a dotted module name)."""
    return [_module(code.co_filename), code.co_qualname]


def _module(filename: str) -> str:
    """The dotted name of the module loaded from ``filename``: as ``sys.modules`` knows it (an editable install's
    import hook puts no directory on ``sys.path``), else from the longest ``sys.path`` entry holding it."""
    found = _MODULES.get(filename)
    if found is None and filename == _SELF:
        found = "tests.bench.sampler"
    if found is None:
        if not _BY_FILE or filename not in _BY_FILE:
            _BY_FILE.update(
                {
                    os.path.abspath(f): name
                    for name, mod in list(sys.modules.items())
                    if isinstance(f := getattr(mod, "__file__", None), str)
                }
            )
        found = _BY_FILE.get(os.path.abspath(filename))
    if found is None:
        found = filename
        best = -1
        for entry in sys.path:
            root = os.path.abspath(entry or ".") + os.sep
            if filename.startswith(root) and len(root) > best:
                best = len(root)
                rel = filename[len(root) :]
                found = rel.removesuffix(".py").removesuffix("/__init__").replace(os.sep, ".")
    _MODULES[filename] = found
    return found


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """native thread id -> (comm, user + system CPU seconds) for this process's threads."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / _CLK_TCK)
    return out


def _process_cpu() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    Sampler(Path(argv[0])).install()
    if argv[1] == "-m":
        sys.path.pop(0)  # this file's directory: its modules must not shadow the target's imports
        sys.argv = [argv[2], *argv[3:]]
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv[1:]
        sys.path[0] = os.path.dirname(os.path.abspath(argv[1]))
        runpy.run_path(argv[1], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
