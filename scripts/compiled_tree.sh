#!/usr/bin/env bash
# A copy of this checkout with the request path compiled by mypyc (setup.py, POINTSMAN_COMPILE=1), for the
# compiled test tier (.ci/run) and the benchmark (python -m tests.bench.run --compiled). The C extensions are built
# next to the copy's sources, so code run with PYTHONPATH=DEST (or from DEST) imports them; this checkout keeps
# its Python sources only (coverage traces them, and an edit takes effect at once).
# Usage: bash scripts/compiled_tree.sh DEST   (DEST is replaced; about 9 minutes of one core for 64 modules)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:?usage: scripts/compiled_tree.sh DEST}
V=${VENV:-$PWD/.venv}/bin
rm -rf "$DEST"
mkdir -p "$DEST"
# the tracked files as they are in the working tree (uncommitted edits included), and the test clients' packages
git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$DEST"
if [ -d tests/clients/node/node_modules ]; then
  ln -s "$PWD/tests/clients/node/node_modules" "$DEST/tests/clients/node/node_modules"
fi
cd "$DEST"
POINTSMAN_COMPILE=1 "$V/python" setup.py -q build_ext --inplace >build_ext.log 2>&1 || {
  tail -40 build_ext.log
  exit 1
}
n=$(find accounting gateway routing serving wire -name '*.so' | wc -l)
echo "compiled tree: $DEST ($n extension modules)"
