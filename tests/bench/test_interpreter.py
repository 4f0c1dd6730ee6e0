"""The bench's ``--python``: which environment an interpreter gets, when it is made again, how the bench runs
itself again from it, and how the report names the interpreter (``tests/bench/interpreter.py``)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from tests.bench import interpreter


def test_an_interpreter_gets_a_directory_named_for_its_executable_and_version() -> None:
    name = interpreter.tag(sys.executable)
    assert name.startswith(f"{Path(sys.executable).resolve().name}-{platform.python_version()}-")
    assert interpreter.tag(sys.executable) == name  # the same interpreter, the same environment


def test_an_interpreter_that_is_not_there_stops_the_bench_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such interpreter"):
        interpreter.tag(str(tmp_path / "python3.99"))


def test_the_environment_is_made_again_when_a_pin_or_the_projects_dependencies_change() -> None:
    freeze, project = "orjson==3.10.0\npydantic==2.14.4\n", b'dependencies = ["orjson"]'
    assert interpreter.pins(freeze, project) == interpreter.pins(freeze, project)
    assert interpreter.pins(freeze.replace("3.10.0", "3.10.1"), project) != interpreter.pins(freeze, project)
    assert interpreter.pins(freeze, project + b"\n") != interpreter.pins(freeze, project)


def test_the_pins_leave_out_this_project_wherever_pip_found_it() -> None:
    freeze = (
        "orjson==3.10.0\npointsman==0.1.0\npointsman @ file:///src\npointsman-tools==1.0\npydantic==2.14.4\n"
    )
    assert interpreter.pinned(freeze) == "orjson==3.10.0\npointsman-tools==1.0\npydantic==2.14.4\n"


def test_the_bench_runs_again_from_the_environment_with_the_same_arguments(tmp_path: Path) -> None:
    argv = ["--python", "/usr/bin/python3.11", "--compiled", "--markdown", "README.md"]
    assert interpreter.reexec_argv(tmp_path, argv) == [
        str(tmp_path / "bin" / "python"),
        "-m",
        "tests.bench.run",
        *argv,
    ]


def test_the_running_environment_is_recognised_and_another_is_not(tmp_path: Path) -> None:
    assert interpreter.running_in(Path(sys.prefix))
    assert not interpreter.running_in(tmp_path)


def test_the_report_names_the_implementation_version_and_base_executable() -> None:
    text = interpreter.describe()
    assert text.startswith(f"{platform.python_implementation()} {platform.python_version()} (")
    assert getattr(sys, "_base_executable", sys.executable) in text
