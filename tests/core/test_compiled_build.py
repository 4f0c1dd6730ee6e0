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


def _slots(cls: ast.ClassDef, names: dict[str, ast.expr]) -> list[str] | None:
    """The names of ``cls``'s ``__slots__`` tuple (written there, or a module-level tuple it names), or None without
    one. ``names``: the module's top-level assignments."""
    for n in cls.body:
        if isinstance(n, ast.Assign) and [ast.unparse(t) for t in n.targets] == ["__slots__"]:
            value = names.get(n.value.id) if isinstance(n.value, ast.Name) else n.value
            if isinstance(value, ast.Tuple):
                return [
                    e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                ]
    return None


def _top_level(tree: ast.Module) -> dict[str, ast.expr]:
    out: dict[str, ast.expr] = {}
    for n in tree.body:
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None:
            out[n.target.id] = n.value
        elif isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            out[n.targets[0].id] = n.value
    return out


def _slot_class_mismatches(path: str, cls: ast.ClassDef, slots: list[str]) -> list[str]:
    """How a class with ``__slots__`` and declared attributes strays from the shape of the gateway's value
    classes: its class-body annotations without a value are its slots, in order (a default is ``__init__``'s; an
    annotation with a value is a class attribute), and ``__init__`` assigns every one of them."""
    where = f"{path}::{cls.name}"
    fields = [
        n
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is None
    ]
    out: list[str] = []
    if [f.target.id for f in fields if isinstance(f.target, ast.Name)] != slots:
        out.append(
            f"{where}: annotations {[ast.unparse(f.target) for f in fields]} are not __slots__ {slots}"
        )
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return [*out, f"{where}: no __init__"]
    assigned = {
        t.attr
        for node in ast.walk(init)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    out += [f"{where}.{name}: never assigned in __init__" for name in slots if name not in assigned]
    return out


def test_value_classes_declare_their_slots_and_assign_each_in_init() -> None:
    """The classes a start imports are plain classes, not dataclasses (tests/core/test_start_path.py): each
    declares its attributes (annotated, with their docstrings) and lists them in ``__slots__``; ``__init__`` sets
    them all. Compiled, such a class is a native one with an ``__init__`` mypyc compiles; a ``Final`` attribute is
    read-only."""
    found: list[str] = []
    checked = 0
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            names = _top_level(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef) or (slots := _slots(node, names)) is None:
                    continue
                if not any(isinstance(n, ast.AnnAssign) and n.value is None for n in node.body):
                    continue  # attributes declared in __init__ only: nothing to compare
                checked += 1
                found += _slot_class_mismatches(str(path.relative_to(ROOT)), node, slots)
    assert checked >= 60
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
