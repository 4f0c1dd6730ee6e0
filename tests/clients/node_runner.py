"""Running a Node client driver (``tests/clients/node/*.mjs``): one process per client, all its scenarios."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).parent / "node"
INSTALL_HINT = "run `bash scripts/install_test_tools.sh` (installs Node and `npm ci` in tests/clients/node)"


def run_driver(script: str, inputs: dict[str, Any], timeout_s: float = 120) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules").is_dir():
        raise RuntimeError(f"Node or the client packages are missing: {INSTALL_HINT}")
    proc = subprocess.run(
        [node, str(NODE_DIR / script)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"PATH": str(Path(node).parent), "MATRIX_INPUT": json.dumps(inputs), "NO_COLOR": "1"},
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
