"""The lifespan's shutdown: every component's close runs, bounded, even when one before it hangs or fails."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.assembly import assemble
from gateway.config import validate_document
from gateway.state import GatewayState


def state(tmp_path: Path, step_timeout_s: float) -> GatewayState:
    doc = {"server": {"data_dir": str(tmp_path), "shutdown_step_timeout_s": step_timeout_s}}
    return assemble(validate_document(doc, "<test>"))


async def test_a_hung_shutdown_step_is_logged_with_its_tasks_and_the_next_steps_still_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = state(tmp_path, 0.2)
    closed: list[str] = []

    async def wedged() -> None:
        await asyncio.Event().wait()  # never set: a close that waits for something that never comes

    async def parked() -> None:
        await asyncio.Event().wait()

    other = asyncio.get_running_loop().create_task(parked(), name="parked-task")

    async def after() -> None:
        closed.append("after")

    s.shutdown = [wedged, *s.shutdown, after]
    await s.start()
    with caplog.at_level(logging.ERROR, "pointsman"):
        await asyncio.wait_for(s.close(), 10)
    other.cancel()
    assert closed == ["after"]
    line = next(r.getMessage() for r in caplog.records if "did not finish" in r.getMessage())
    assert "wedged" in line and "0.2 s" in line
    assert "parked-task: " in line and "parked" in line


async def test_a_failing_shutdown_step_does_not_stop_the_ones_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = state(tmp_path, 5)
    closed: list[str] = []

    async def broken() -> None:
        raise RuntimeError("close failed")

    async def after() -> None:
        closed.append("after")

    s.shutdown = [broken, *s.shutdown, after]
    await s.start()
    with caplog.at_level(logging.ERROR, "pointsman"):
        await s.close()
    assert closed == ["after"]
    assert any("broken failed" in r.getMessage() and r.exc_info for r in caplog.records)
