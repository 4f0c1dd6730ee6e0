"""The compiled build (setup.py with ``POINTSMAN_COMPILE=1``, scripts/compiled_tree.sh): what it compiles, the
one code shape its compiler gets wrong, and how the gateway tells which build runs. The compiled tier (.ci/run)
runs the whole default tier against a compiled copy."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from gateway.build import PACKAGES, compiled_modules, describe

ROOT = Path(__file__).resolve().parents[2]


def listed() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        modules: list[str] = tomllib.load(f)["tool"]["pointsman"]["compiled"]
    return modules


def test_every_compiled_module_is_a_source_file_of_the_packages() -> None:
    modules = listed()
    assert modules == sorted(set(modules))
    for path in modules:
        assert path.partition("/")[0] in PACKAGES and path.endswith(".py"), path
        assert (ROOT / path).is_file(), path


def test_no_compiled_module_awaits_in_a_finally() -> None:
    """mypyc (2.4.1) compiles an ``await`` in a ``finally`` so that, on the way out of the ``finally``, it raises
    again an exception the function had already handled, when that exception was thrown into it by the event
    loop (a future's timeout, a cancellation): a client's cancellation taken back by the relay came back as a
    cancelled request with $0, an upstream timeout as an internal error. ``try: ... except BaseException: await
    close(); raise`` then ``await close()`` behaves the same compiled and not."""
    found = []
    for path in listed():
        tree = ast.parse((ROOT / path).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Try | ast.TryStar):
                for stmt in node.finalbody:
                    found += [
                        f"{path}:{a.lineno}"
                        for a in ast.walk(stmt)
                        if isinstance(a, ast.Await | ast.AsyncFor)
                    ]
    assert found == []


def test_modules_installed_as_c_extensions_are_the_compiled_ones(tmp_path: Path) -> None:
    gateway = tmp_path / "gateway"
    (gateway / "inference").mkdir(parents=True)
    (gateway / "inference" / "handler.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (gateway / "inference" / "handler.py").write_text("")
    (gateway / "app.py").write_text("")
    assert compiled_modules({"gateway": gateway}) == ["gateway.inference.handler"]
    assert describe(["a", "b"]) == "build: 2 request-path modules compiled with mypyc"
    assert describe([]).startswith("build: Python sources")
