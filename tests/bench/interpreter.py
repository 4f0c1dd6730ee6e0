"""The interpreter the bench's Python targets run under (``--python``).

The image runs pointsman on ``python:3.11-slim``'s CPython (deploy/Dockerfile), which is built with profile-guided
and link-time optimization (``--enable-optimizations --with-lto``). A development machine's interpreter may be
built without them: pyenv builds without unless asked, and on these machines its 3.11.7 runs the gateway's start
(imports, config, app) in ~1.3x the CPU time of Debian's optimized 3.11.2 (``/usr/bin/python3.11``), which
understates every absolute figure of every Python target alike (cold start, added latency, time to first byte).

``--python PATH`` measures under another interpreter: the bench makes a virtual environment of it under
``.cache/bench-venv/`` with this checkout installed (``pip install -e '.[test]'``), its packages pinned to the
versions of the environment the bench was started from (``pip freeze``, as constraints), and runs itself again
from there, so that pointsman, its compiled copy (built by that interpreter), the plain pass-through and LiteLLM's
proxy (a venv of its own per interpreter) all run under it. The environment is made again when the pins or
``pyproject.toml`` change. The report names the interpreter every run used (``describe``).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.bench import procs

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "bench-venv"
_STAMP = ".pinned"


def base_executable() -> Path:
    """The interpreter this process runs under: the executable its virtual environment was made from
    (``sys._base_executable``), or its own."""
    return Path(getattr(sys, "_base_executable", sys.executable))


def describe() -> str:
    """The running interpreter, as the report names it: implementation, version and ``base_executable``."""
    return f"{platform.python_implementation()} {platform.python_version()} ({base_executable()})"


def tag(python: str) -> str:
    """A directory name for ``python``: its executable's name and a digest of its resolved path and version."""
    real = os.path.realpath(python)
    if not os.access(real, os.X_OK):
        raise SystemExit(f"--python {python}: no such interpreter")
    version = subprocess.run(
        [real, "-c", "import platform; print(platform.python_version())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    digest = hashlib.sha256(f"{real}\0{version}".encode()).hexdigest()[:8]
    return f"{Path(real).name}-{version}-{digest}"


def pins(freeze: str, pyproject: bytes) -> str:
    """The digest a bench environment is made for: the running environment's ``pip freeze`` and the checkout's
    ``pyproject.toml`` (its dependencies)."""
    h = hashlib.sha256(freeze.encode())
    h.update(b"\0")
    h.update(pyproject)
    return h.hexdigest()


def pinned(freeze: str) -> str:
    """``pip freeze``'s lines less this project's own: run from the checkout, pip also finds the checkout's
    ``pointsman.egg-info`` (a ``pip install -e`` leaves it there) and lists it as installed, or not, by where it
    runs from."""
    return "".join(line for line in freeze.splitlines(keepends=True) if _name(line) != "pointsman")


def _name(line: str) -> str:
    """The distribution a ``pip freeze`` line names (``name==version`` or ``name @ url``), lower-cased."""
    return line.split("==", 1)[0].split(" @ ", 1)[0].strip().lower()


def running_in(venv: Path) -> bool:
    """Whether this process runs from ``venv``."""
    return Path(sys.prefix).resolve() == venv.resolve()


def venv_of(python: str) -> Path:
    """Where the bench environment of ``python`` is (``ensure`` makes it)."""
    return CACHE / tag(python)


def ensure(python: str, venv: Path, log: Callable[[str], None]) -> None:
    """Make the bench environment of ``python`` at ``venv``, or make it again when its pins changed (from the
    environment the bench was started from: not from ``venv`` itself, whose own freeze differs)."""
    freeze = pinned(
        subprocess.run(
            [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    want = pins(freeze, (ROOT / "pyproject.toml").read_bytes())
    stamp = venv / _STAMP
    if stamp.exists() and stamp.read_text().strip() == want and (venv / "bin" / "python").exists():
        return
    log(f"making the bench environment of {python} at {venv} (once per change of pins; a few minutes)")
    journal = CACHE / f"{venv.name}.log"
    venv.parent.mkdir(parents=True, exist_ok=True)
    _run([python, "-m", "venv", "--clear", str(venv)], journal)
    constraints = venv / "constraints.txt"
    constraints.write_text(freeze)
    pip = str(venv / "bin" / "pip")
    _run([pip, "install", "--quiet", "-c", str(constraints), "-e", f"{ROOT}[test]"], journal)
    stamp.write_text(want + "\n")


def reexec_argv(venv: Path, argv: Sequence[str]) -> list[str]:
    """The command that runs the bench again, with the same arguments, from ``venv``."""
    python = str(venv / "bin" / "python")
    return [python, "-m", "tests.bench.run", *argv]


def _run(argv: list[str], journal: Path) -> None:
    failed = procs.run_logged(argv, journal, ROOT)
    if failed is not None:
        raise SystemExit(f"{failed} (the whole log: {journal})")
