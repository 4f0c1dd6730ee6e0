"""``procs.run_logged``: a command run to its end with its output kept in a log, as the bench's installs run
(LiteLLM's venv, the ``--python`` environment)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.bench import procs


def test_a_command_that_succeeds_reports_nothing_and_leaves_its_output_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "install.log"
    assert procs.run_logged([sys.executable, "-c", "print('installed')"], log) is None
    assert log.read_text() == "installed\n"


def test_a_command_that_fails_reports_its_exit_status_and_the_logs_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "install.log"
    failed = procs.run_logged([sys.executable, "-c", "print('a'); print('b'); raise SystemExit(3)"], log)
    assert failed is not None
    assert "failed (3)" in failed
    assert failed.endswith("a | b")
