"""Which of pointsman's modules run compiled (mypyc's C extensions, built with ``POINTSMAN_COMPILE=1``: setup.py)
rather than from their Python sources. Said at startup; the benchmark records it with its figures."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import ModuleType

PACKAGES = ("accounting", "gateway", "routing", "serving", "wire")


def compiled_modules(modules: Mapping[str, ModuleType] | None = None) -> list[str]:
    """The imported modules of pointsman's packages loaded from a C extension (``sys.modules`` by default)."""
    mods = sys.modules if modules is None else modules
    return sorted(
        name
        for name, m in list(mods.items())
        if name.partition(".")[0] in PACKAGES
        and str(getattr(m, "__file__", "") or "").endswith((".so", ".pyd"))
    )


def describe(compiled: list[str]) -> str:
    if compiled:
        return f"build: {len(compiled)} request-path modules compiled with mypyc"
    return "build: Python sources (POINTSMAN_COMPILE=1 at install compiles the request path: setup.py)"
