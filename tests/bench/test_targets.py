"""How the bench finds the interpreter for the profiled run of ``--pointsman-bin`` (``targets.interpreter_of``):
the sampler runs ``python -m gateway.cli`` with it, whatever kind of file the console script is."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.bench.targets import interpreter_of


def _script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pointsman"
    p.write_text(text)
    p.chmod(0o755)
    return p


def test_a_console_script_runs_under_the_python_its_shebang_names(tmp_path: Path) -> None:
    script = _script(tmp_path, "#!/opt/venv/bin/python3.11\nimport sys\nfrom gateway.cli import main\n")
    assert interpreter_of(script) == "/opt/venv/bin/python3.11"


def test_an_env_shebang_resolves_its_python_on_the_path(tmp_path: Path) -> None:
    script = _script(tmp_path, "#!/usr/bin/env python3\nfrom gateway.cli import main\n")
    assert interpreter_of(script) == shutil.which("python3")


def test_a_shell_wrapper_runs_under_the_benchs_own_python(tmp_path: Path) -> None:
    script = _script(tmp_path, '#!/bin/sh\nexec /somewhere/else/pointsman "$@"\n')
    assert interpreter_of(script) == sys.executable


def test_a_missing_script_runs_under_the_benchs_own_python(tmp_path: Path) -> None:
    assert interpreter_of(tmp_path / "absent") == sys.executable
