#!/usr/bin/env bash
# Install everything the default test tier needs on a fresh Debian/Ubuntu machine, then run it:
# lint and format (ruff), types (mypy --strict), layer contracts (import-linter), and pytest (warnings are
# errors) with the coverage floor: scripts/check.sh, the same as `make check`.
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
bash scripts/check.sh "$@"
