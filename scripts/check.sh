#!/usr/bin/env bash
# The developer loop and the default CI tier, in one place (`make check`, and scripts/test.sh after it has
# installed what the tests need): lint, format, types, layer contracts, then the default tests with the
# coverage floor (pyproject's [tool.coverage.report] fail_under, which only ever rises).
# Usage: bash scripts/check.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
V=${VENV:-.venv}/bin
"$V/ruff" check .
"$V/ruff" format --check .
"$V/mypy"
"$V/lint-imports"
# Exit code 5 (no tests collected) fails this script like any other failure.
# Two workers (pytest-xdist; a file's tests stay on one worker, so its module fixtures are built once): most tests
# wait on a gateway process, an upstream or a timer, and one worker left a core idle (serial: 16 min 3 s on this
# project's 2-core machine on 2026-12-06, past the 15-minute budget; two workers: ~10 min, same tests, coverage).
"$V/python" -m pytest -m "not vllm and not slow and not docker" -n 2 --dist loadfile \
  --cov --cov-report=term:skip-covered "$@"
