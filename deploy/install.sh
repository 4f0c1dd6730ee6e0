#!/bin/sh
# The image's install recipe (deploy/Dockerfile runs it in its build stage; tests/deploy/test_image_install.py runs
# it outside Docker): installs the package in the current directory into the virtual environment VENV, its request
# path compiled with mypyc when POINTSMAN_COMPILE=1 (setup.py; docs/design.md, the compiled build), and checks which
# build it made.
#
# Compiling type-checks the code with mypy against what it imports, so the build needs, besides a C compiler, mypy
# (it carries mypyc), setuptools and wheel, and the packages only the type check reads: the PyYAML stubs and psycopg (the
# PostgreSQL ledger's driver, imported only when configured). They are installed for the build and removed after
# it: the environment it leaves holds what `pip install .` would, the request path compiled.
#
# Usage: POINTSMAN_COMPILE=1|0 sh deploy/install.sh VENV   (from the directory holding pyproject.toml)
set -eu
VENV=${1:?usage: deploy/install.sh VENV}
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac
COMPILE=${POINTSMAN_COMPILE:-0}
MYPY_VERSION=${MYPY_VERSION:-2.4.1}
BUILD_ONLY="mypy types-PyYAML psycopg wheel"
PIP="$VENV/bin/pip"
# the dependencies and the sources first (not compiled here: pip builds this one in an isolated environment)
POINTSMAN_COMPILE=0 "$PIP" install --no-compile .
if [ "$COMPILE" = 1 ]; then
  "$PIP" install "setuptools>=68" wheel "mypy==$MYPY_VERSION" types-PyYAML "psycopg>=3.1"
  # the package again, compiled: without build isolation, so that mypy sees the installed dependencies
  POINTSMAN_COMPILE=1 "$PIP" install --no-compile --no-build-isolation --no-deps --force-reinstall .
  # shellcheck disable=SC2086
  "$PIP" uninstall -y $BUILD_ONLY
fi
# the build made is the one asked for: every module pyproject.toml lists ([tool.pointsman] compiled) is a C extension
# exactly when compiled (found from outside the source directory, whose sources would shadow the installed ones;
# found, not imported: a module may import what only its optional feature installs, psycopg for PostgreSQL)
PYPROJECT=$PWD/pyproject.toml
cd /
PYPROJECT=$PYPROJECT POINTSMAN_COMPILE=$COMPILE "$VENV/bin/python" -c '
import importlib.util
import os
import tomllib

import gateway.cli
from gateway.build import compiled_modules, describe

with open(os.environ["PYPROJECT"], "rb") as f:
    listed = [p[:-3].replace("/", ".") for p in tomllib.load(f)["tool"]["pointsman"]["compiled"]]
want = os.environ["POINTSMAN_COMPILE"] == "1"
wrong = [m for m in listed if str(getattr(importlib.util.find_spec(m), "origin", "")).endswith(".so") != want]
assert not wrong, f"POINTSMAN_COMPILE={int(want)}, yet these are built the other way: {wrong}"
print(describe(compiled_modules()))
'
