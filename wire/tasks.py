"""Background loops and their cancellation: the one rule for a loop that awaits a library that can swallow it.

A component's ``close`` cancels its background task and awaits it. That hangs when the task swallows the
cancellation, which two things it awaits do now and then: redis-py's asyncio client (8.x), whose command the task
was waiting on when it was cancelled returns its answer as if nothing happened (measured: about one cancellation in
200 during a blocking ``XREADGROUP``), and Python 3.11's own ``asyncio.wait_for`` when what it waits for completes
in the same turn as the cancellation (fixed in 3.12). A loop around such a command then runs on, and shutdown
waits for it until ``server.shutdown_step_timeout_s``, past a Kubernetes grace period that ends in SIGKILL before
the ledger's last flush. Such a loop checks ``cancel_requested()`` each time round and stops.
"""

from __future__ import annotations

import asyncio


def cancel_requested() -> bool:
    """Whether the running task has been asked to stop (``Task.cancel``) and has not taken it back: True in a
    loop that a swallowed cancellation let run on."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
