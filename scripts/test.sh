#!/usr/bin/env bash
# Install everything the default test tier needs on a fresh Debian/Ubuntu machine, then run it:
# lint (ruff), types (mypy --strict), layer contracts (import-linter), and pytest (warnings are errors).
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/install_test_tools.sh
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
# Exit code 5 (no tests collected) fails this script like any other failure.
.venv/bin/python -m pytest -m "not vllm and not slow" "$@"
