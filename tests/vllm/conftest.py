"""The `vllm` tier: a real vLLM OpenAI-compatible server on CPU serving a tiny random Llama.

Run it with ``make test-vllm`` (= ``pytest -m vllm tests/vllm``). The first run builds the vLLM venv and the
model under ``.cache/tiny-vllm/`` through ``scripts/vllm_cpu.sh env`` (a few minutes, ~2.5 GB); later runs
reuse them. The server takes ~20-30 s to become healthy and uses ~1.5 GiB.

Fixture API (session scope)::

    def test_x(vllm_server):
        vllm_server.base_url      # "http://127.0.0.1:PORT" (no /v1)
        vllm_server.api_base      # base_url + "/v1", for openai.OpenAI(base_url=...)
        vllm_server.model         # "tiny"       served base model id
        vllm_server.lora          # "tiny-lora"  adapter served from start (its own model id)
        vllm_server.lora_path     # dir of a second adapter, not loaded: for POST /v1/load_lora_adapter
                                  # (runtime LoRA updating is enabled)
        vllm_server.lora2         # "tiny-lora-2", a suggested lora_name for loading lora_path
        vllm_server.metrics_text()  # GET /metrics body (vllm:* Prometheus families)

Facts tests may rely on: ``max_model_len`` is 256; with ``"ignore_eos": true`` or temperature 0
``usage.completion_tokens == max_tokens``; ``usage.prompt_tokens`` equals ``POST /tokenize``'s count; streaming
sends usage only with ``stream_options: {"include_usage": true}``; unknown model -> 404; output text is
gibberish (may contain U+FFFD).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "vllm_cpu.sh"
HEALTH_TIMEOUT_S = float(os.environ.get("TINYVLLM_HEALTH_TIMEOUT", "240"))
ENV_TIMEOUT_S = 1800  # first-time install + model build


def _cache_root() -> Path:
    return Path(os.environ.get("TINYVLLM_ROOT", REPO / ".cache" / "tiny-vllm"))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Never collect this tier in a run with no -m expression (a bare `pytest` must not install vLLM).
    # With one (`-m vllm` or the default `-m "not vllm and not slow"`) the marker decides.
    if not config.getoption("markexpr"):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.vllm)


@dataclass(frozen=True)
class VLLMServer:
    base_url: str
    model: str
    lora: str
    lora_path: str
    log_path: Path
    pid: int
    lora2: str = "tiny-lora-2"  # a suggested model id for loading lora_path at runtime

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=30) as r:
            body: bytes = r.read()
        return body.decode()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    pgid = proc.pid  # start_new_session: the server leads its own process group
    if proc.poll() is None:
        # the API server stops its engine processes itself on SIGTERM (~3 s)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=10)
    # let the rest of the group (engine core, multiprocessing's resource tracker cleaning up shared memory)
    # finish, then kill whatever outlived it
    deadline = time.monotonic() + 15
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[VLLMServer]:
    root = _cache_root()
    env = {**os.environ, "TINYVLLM_ROOT": str(root)}
    prep = subprocess.run(
        ["bash", str(SCRIPT), "env"], env=env, capture_output=True, text=True, timeout=ENV_TIMEOUT_S
    )
    if prep.returncode != 0:
        pytest.fail(f"scripts/vllm_cpu.sh env failed ({prep.returncode}):\n{prep.stdout}\n{prep.stderr}")

    port = _free_port()
    env["TINYVLLM_PORT"] = str(port)
    env["TINYVLLM_LORA"] = "1"
    (root / "logs").mkdir(parents=True, exist_ok=True)
    log_path = root / "logs" / f"vllm-{port}.log"
    base_url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        # `serve` execs vllm, so proc is the API server; its own session keeps Ctrl-C on pytest from
        # reaching it half-way and lets _stop() sweep the whole group
        proc = subprocess.Popen(
            ["bash", str(SCRIPT), "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _healthy(base_url):
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}; {log_path}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"vllm serve not healthy after {HEALTH_TIMEOUT_S:.0f} s; {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield VLLMServer(
            base_url=base_url,
            model="tiny",
            lora="tiny-lora",
            lora_path=str(root / "tiny-lora-2"),
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        _stop(proc)
