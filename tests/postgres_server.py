"""A real PostgreSQL server for tests (install: scripts/install_test_tools.sh).

``initdb`` refuses to run as root, so as root the cluster belongs to an unprivileged user (``nobody``) and the
server binaries run through ``runuser``; otherwise they run as the current user. The cluster lives in a
temporary directory (its Unix socket too), listens on a free loopback port, trusts local connections, and is
removed on ``stop``. ``kill`` stops it at once (SIGKILL of the postmaster: no shutdown checkpoint), ``start``
brings the same cluster back on the same port; ``pause``/``resume`` freeze and thaw it (SIGSTOP/SIGCONT).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.fakes.server import free_port

_USER = "nobody"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: run scripts/install_test_tools.sh (Debian's postgresql)")
    return path


class PostgresServer:
    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.settings = settings or {}
        """Extra server settings (``-c name=value``), e.g. a benchmark's ``shared_buffers``."""
        self.root = Path(tempfile.mkdtemp(prefix="pointsman-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        self._initialized = False

    @property
    def dsn(self) -> str:
        return f"postgresql://{_USER if self._as_root else 'postgres'}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = list(argv)
        if self._as_root:
            cmd = ["runuser", "-u", _USER, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, timeout=60)

    def _init(self) -> None:
        if self._as_root:
            shutil.chown(self.root, user=_USER)
        user = _USER if self._as_root else "postgres"
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8")
        self._initialized = True

    def start(self) -> PostgresServer:
        if not self._initialized:
            self._init()
        opts = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        opts += "".join(f" -c {k}={v}" for k, v in self.settings.items())
        res = self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "start", check=False
        )
        if res.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {res.stderr.decode()} {self._log_tail()}")
        return self

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text()[-2000:]
        return ""

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (the database vanishes mid-transaction)."""
        pid = self.pid()
        if pid is None:
            return
        for victim in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            (self.data / "postmaster.pid").unlink()

    def pause(self) -> None:
        """SIGSTOP the postmaster and its backends: connections stay open and the kernel still accepts and
        acknowledges, but nothing answers (a frozen host, a stalled disk) until ``resume``."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: signal.Signals) -> None:
        pid = self.pid()
        if pid is None:
            return
        for victim in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, sig)

    def stop(self) -> None:
        if self._initialized and self.pid() is not None:
            self.resume()  # a paused server would not take pg_ctl's signal
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self._initialized = False


def _children(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.split("/")[2]))
    return out
