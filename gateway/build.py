"""Which of pointsman's modules are installed compiled (mypyc's C extensions, built with ``POINTSMAN_COMPILE=1``:
setup.py) rather than as their Python sources. Said at startup; the benchmark records it with its figures."""

from __future__ import annotations

import importlib.util
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

PACKAGES = ("accounting", "gateway", "routing", "serving", "wire")


def package_dirs() -> dict[str, Path]:
    """Where each of pointsman's packages is imported from."""
    out = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            out[name] = Path(next(iter(spec.submodule_search_locations)))
    return out


def compiled_modules(dirs: dict[str, Path] | None = None) -> list[str]:
    """The modules of pointsman's packages installed as C extensions (a ``.so``/``.pyd`` beside the sources), by
    dotted name; ``dirs``: the packages' directories (``package_dirs()`` by default). Said in the startup report,
    so before the first request is served: names only, no ``Path`` per file, and no ``__pycache__`` (~11 ms of a
    start in a checkout with ``rglob``, ~1 here)."""
    found: list[str] = []
    for name, root in (package_dirs() if dirs is None else dirs).items():
        _scan(str(root), name, found)
    return sorted(found)


def _scan(directory: str, dotted: str, found: list[str]) -> None:
    with os.scandir(directory) as entries:
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if e.name != "__pycache__":
                    _scan(e.path, f"{dotted}.{e.name}", found)
                continue
            suffix = next((s for s in EXTENSION_SUFFIXES if e.name.endswith(s)), None)
            if suffix is not None:
                found.append(f"{dotted}.{e.name[: -len(suffix)]}")


def describe(compiled: list[str]) -> str:
    if compiled:
        return f"build: {len(compiled)} request-path modules compiled with mypyc"
    return "build: Python sources (POINTSMAN_COMPILE=1 at install compiles the request path: setup.py)"
