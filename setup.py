"""Builds pointsman (the metadata is in pyproject.toml). With ``POINTSMAN_COMPILE=1`` in the environment, the
request path's modules (``[tool.pointsman] compiled`` in pyproject.toml) are compiled with mypyc into C
extensions that replace them: ~13% less CPU per request (docs/design.md, the compiled build). That needs mypy (it
carries mypyc), the packages the code imports (for its types) and a C compiler in the build environment, so the
build runs without isolation. ``deploy/install.sh`` is the recipe (the image runs it):

    POINTSMAN_COMPILE=1 sh deploy/install.sh VENV

Without it (the default, and ``pip install -e .``) the package is the Python sources alone."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from setuptools import setup


def compiled_modules() -> list[str]:
    with (Path(__file__).parent / "pyproject.toml").open("rb") as f:
        modules: list[str] = tomllib.load(f)["tool"]["pointsman"]["compiled"]
    return modules


def ext_modules() -> list[object]:
    if os.environ.get("POINTSMAN_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(compiled_modules(), opt_level="3"))


setup(ext_modules=ext_modules())
