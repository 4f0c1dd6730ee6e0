"""``GET /admin/debug/process``: the serving process's own resources, for leak checks and operators.

Cheap to call (a directory listing of ``/proc/self/fd`` and one read of ``/proc/self/statm``); answers for the
worker that serves the call (``pid`` says which).
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from typing import Any

from fastapi import APIRouter

from gateway.deps import State


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def build_router() -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.get("/debug/process", summary="Process resources: asyncio tasks, open files, memory, threads")
    async def process(st: State, gc_objects: bool = False) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "open_fds": _open_fds(),
            "rss_bytes": _rss_bytes(),
            "threads": threading.active_count(),
            "in_flight": st.in_flight,
            "gc_objects": len(gc.get_objects()) if gc_objects else None,
        }

    return router
