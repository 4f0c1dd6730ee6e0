"""Workers of ``pointsman serve --workers N`` live only as long as their supervisor.

uvicorn's supervisor stops its workers when it is asked to stop, but a supervisor killed outright (``kill -9``,
the OOM killer) leaves them serving: the port stays taken and the next start fails with ``EADDRINUSE``. Each
worker therefore asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``; SIGTERM drains it
like any shutdown) and, everywhere, checks its parent once a second as a fallback.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

SUPERVISOR_ENV = "POINTSMAN_SUPERVISOR_PID"
"""Set by the supervisor before it starts workers: its pid."""
_PR_SET_PDEATHSIG = 1


def mark_supervisor() -> None:
    """In the supervisor, before uvicorn starts the workers (they inherit the environment)."""
    os.environ[SUPERVISOR_ENV] = str(os.getpid())


def bind_to_supervisor(poll_s: float = 1.0) -> bool:
    """In a worker: exit (SIGTERM to itself) when the supervisor is gone. Returns whether this is a worker."""
    raw = os.environ.get(SUPERVISOR_ENV)
    if not raw or not raw.isdigit() or int(raw) == os.getpid():
        return False
    supervisor = int(raw)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the parent check below still holds
            pass

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(poll_s):
            if os.getppid() != supervisor:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="pointsman-supervisor-watch", daemon=True).start()
    if os.getppid() != supervisor:  # it died before the kernel was asked to tell us
        os.kill(os.getpid(), signal.SIGTERM)
    return True
