"""Process helpers: free ports, CPU pinning, spawning, stopping, RSS and CPU time of a process tree."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.build import PACKAGES

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def compile_bytecode(tree: Path, python: str = sys.executable) -> None:
    """Write the bytecode of a checkout's packages, as installing pointsman does (pip compiles what it installs,
    and so does the image build). A checkout run in place under ``PYTHONDONTWRITEBYTECODE`` (set on this
    project's machines) never writes it, so every start would compile ~200 modules again: measured, 0.63 s
    from spawn to ready without it, 0.53 s with it. Stale files are ignored by Python (it checks the source)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    argv = [python, "-m", "compileall", "-q", *(str(tree / p) for p in PACKAGES)]
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)


def run_logged(argv: Sequence[str], log: Path, cwd: Path | None = None) -> str | None:
    """Run ``argv`` to its end, its output appended to ``log``: None when it succeeded, else what failed (the
    command, its exit status and the log's last lines)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if done.returncode == 0:
        return None
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return f"{' '.join(argv[:3])} ... failed ({done.returncode}): {' | '.join(tail)}"


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """``argv`` under ``taskset -c CPU`` (taskset execs, so the pid stays the command's)."""
    return list(argv) if cpu is None else ["taskset", "-c", str(cpu), *argv]


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, in ``log``'s directory, stdout and stderr to ``log``
    (so whatever a gateway writes to relative paths, ``./data`` for instance, stays there too); ``env`` is set
    over this process's environment."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )


async def stop(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process group we started, SIGKILL it after ``grace_s``."""
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    for _ in range(int(grace_s / 0.02)):
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.02)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)  # our own group: spawn() used start_new_session
    except ProcessLookupError:
        pass


def tree(root: int) -> list[int]:
    """``root`` and all its descendants (workers of a gateway, for instance)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_bytes(root: int) -> int:
    """Sum of VmRSS over the process tree (shared pages of forked workers count twice)."""
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_seconds(root: int) -> float:
    """User + system CPU time of the live process tree."""
    ticks = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / _CLK_TCK


_CPU_TIMES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
"""The first columns of ``/proc/stat``'s ``cpu`` line (all CPUs), in clock ticks (proc(5))."""


def cpu_times_s() -> dict[str, float]:
    """CPU seconds all CPUs have spent in each state since boot, by ``_CPU_TIMES`` name (a kernel without a
    column: 0)."""
    ticks = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1 : len(_CPU_TIMES) + 1]
    return {name: int(ticks[i]) / _CLK_TCK if i < len(ticks) else 0.0 for i, name in enumerate(_CPU_TIMES)}


def system_busy_s(t: dict[str, float] | None = None) -> float:
    """CPU seconds all CPUs have spent in user, nice and system time since boot (interrupt time is
    left out: loopback networking lands there without being charged to any process)."""
    t = cpu_times_s() if t is None else t
    return t["user"] + t["nice"] + t["system"]


def steal_s(t: dict[str, float] | None = None) -> float:
    """CPU seconds the hypervisor has run something else while this machine's CPUs wanted to run (``steal``,
    summed over CPUs), since boot: what no process's CPU time shows."""
    return (cpu_times_s() if t is None else t)["steal"]


def own_cpu_s() -> float:
    """CPU seconds used by this process and its descendants, live or reaped."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / _CLK_TCK  # cutime, cstime
    return cpu_seconds(os.getpid()) + reaped


class BackgroundLoad:
    """Average CPU (in cores) used by processes other than the bench's since construction, and taken by the
    hypervisor (steal time: on a virtual machine, the host's other guests)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        times = cpu_times_s()
        self._busy0 = system_busy_s(times)
        self._own0 = own_cpu_s()
        self._steal0 = steal_s(times)

    def cores(self) -> float:
        wall = time.monotonic() - self._t0
        foreign = (system_busy_s() - self._busy0) - (own_cpu_s() - self._own0)
        return max(0.0, foreign / wall) if wall > 0 else 0.0

    def stolen(self) -> float:
        """Cores the hypervisor took, on average (a share of this machine's CPUs' time, summed over them)."""
        wall = time.monotonic() - self._t0
        return max(0.0, (steal_s() - self._steal0) / wall) if wall > 0 else 0.0


_SPIN = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
while True:
    pass
"""


class Awake:
    """CPUs kept from halting: one busy loop per CPU at ``SCHED_IDLE`` priority, which any other runnable thread
    preempts at once. Between the requests of an open-loop phase an idle CPU halts, and in a virtual machine
    waking it again costs tens to hundreds of microseconds each time; a request through a gateway wakes a CPU
    more often than one sent directly, so part of the "added" latency is the platform's, not the gateway's code.
    With the CPUs kept awake, the added figures measure the gateway's own work (tests/bench/README.md)."""

    def __init__(self, cpus: Sequence[int]) -> None:
        self.cpus = list(cpus)
        self.loops: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Awake:
        for cpu in self.cpus:
            self.loops.append(subprocess.Popen([sys.executable, "-c", _SPIN, str(cpu)]))
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.loops:
            p.kill()
        for p in self.loops:
            p.wait()
        self.loops = []
