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


def _is_written_out_dataclass(node: ast.ClassDef) -> bool:
    for d in node.decorator_list:
        if isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "dataclass":
            return any(
                k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in d.keywords
            )
    return False


def _factory(default: ast.expr | None) -> ast.expr | None:
    """The ``default_factory`` of ``field(default_factory=F)``, else None."""
    if isinstance(default, ast.Call) and isinstance(default.func, ast.Name) and default.func.id == "field":
        return next((k.value for k in default.keywords if k.arg == "default_factory"), None)
    return None


def _init_mismatches(path: str, cls: ast.ClassDef) -> list[str]:
    """How ``cls``'s written-out ``__init__`` differs from the one ``@dataclass`` would generate: the same
    parameters in the order of the fields, with their annotations and defaults (a ``default_factory`` field takes
    None, for which the factory's value is assigned), each assigned to its field once."""
    where = f"{path}::{cls.name}"
    fields = [n for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return [f"{where}: init=False without an __init__"]
    params = init.args.args[1:]
    defaults: list[ast.expr | None] = [None] * (len(params) - len(init.args.defaults)) + list(
        init.args.defaults
    )
    out: list[str] = []
    if [p.arg for p in params] != [f.target.id for f in fields if isinstance(f.target, ast.Name)]:
        return [f"{where}: parameters {[p.arg for p in params]} are not the fields, in order"]
    assigned: dict[str, list[ast.expr]] = {}
    for stmt in init.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(t := stmt.targets[0], ast.Attribute)
            and isinstance(t.value, ast.Name)
            and t.value.id == "self"
        ):
            assigned.setdefault(t.attr, []).append(stmt.value)
    for f, p, d in zip(fields, params, defaults, strict=True):
        name = p.arg
        factory = _factory(f.value)
        want_ann = ast.dump(f.annotation)
        got_ann = ast.dump(p.annotation) if p.annotation is not None else ""
        values = assigned.get(name, [])
        if len(values) != 1:
            out.append(f"{where}.{name}: assigned {len(values)} times")
            continue
        value = values[0]
        if factory is not None:
            if not (isinstance(d, ast.Constant) and d.value is None):
                out.append(f"{where}.{name}: a default_factory field's parameter defaults to None")
            if got_ann != ast.dump(ast.BinOp(f.annotation, ast.BitOr(), ast.Constant(None))):
                out.append(f"{where}.{name}: annotated {ast.unparse(p.annotation) if p.annotation else None}")
            made = {"list": "[]", "dict": "{}"}.get(ast.unparse(factory), f"{ast.unparse(factory)}()")
            expected = f"{made} if {name} is None else {name}"
            if ast.unparse(value) != expected:
                out.append(f"{where}.{name}: assigned {ast.unparse(value)}, not {expected}")
            continue
        if got_ann != want_ann:
            out.append(f"{where}.{name}: annotated {ast.unparse(p.annotation) if p.annotation else None}")
        if (f.value is None) != (d is None) or (
            f.value is not None and d is not None and ast.dump(f.value) != ast.dump(d)
        ):
            out.append(
                f"{where}.{name}: default {ast.unparse(d) if d else None}, field's {ast.unparse(f.value) if f.value else None}"
            )
        if ast.unparse(value) != name:
            out.append(f"{where}.{name}: assigned {ast.unparse(value)}")
    return out


def test_written_out_dataclass_inits_match_their_fields() -> None:
    """mypyc compiles a dataclass's methods but not the ``__init__`` that ``@dataclass`` generates at import: it
    stays interpreted, setting each attribute through the class's descriptors (1.5 us for the request record,
    against ~0.1 us compiled). The classes made on every request declare ``init=False`` and write it out; this
    keeps each the one ``@dataclass`` would write."""
    found: list[str] = []
    checked = 0
    for path in listed():
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.ClassDef) and _is_written_out_dataclass(node):
                checked += 1
                found += _init_mismatches(path, node)
    assert checked >= 10
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
