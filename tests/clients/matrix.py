"""Running a client's scenarios and comparing what it got with what it must get.

A driver runs every scenario of one client and returns ``{scenario: observed}``; a scenario that raised
unexpectedly is reported as ``{"unexpected": "<Class>: <message>"}`` so the others still run. Each test then
checks one (client, scenario) pair, and a failure names the client, the feature and the difference.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.clients.expected import flaky_model
from tests.fakes.openai_upstream import FakeOpenAI


def run_all(scenarios: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in scenarios.items():
        try:
            out[name] = fn()
        except Exception as exc:  # reported per scenario, not fatal to the rest
            out[name] = {
                "unexpected": f"{type(exc).__name__}: {exc}",
                "where": traceback.format_exc(limit=-3),
            }
    return out


def _diff(expected: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(got, dict):
        out: list[str] = []
        for k in sorted(set(expected) | set(got), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in got:
                out.append(f"{p}: missing (expected {expected[k]!r})")
            elif k not in expected:
                out.append(f"{p}: unexpected {got[k]!r}")
            else:
                out.extend(_diff(expected[k], got[k], p))
        return out
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [
            d for i, (e, g) in enumerate(zip(expected, got, strict=True)) for d in _diff(e, g, f"{path}[{i}]")
        ]
    if expected != got:
        return [f"{path or 'value'}: expected {_short(expected)}, got {_short(got)}"]
    return []


def _short(v: Any, limit: int = 400) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[:limit] + f"… ({len(r)} chars)"


def check(client: str, scenario: str, observed: dict[str, Any], expected: Any) -> None:
    if scenario not in observed:
        pytest.fail(f"{client} × {scenario}: the driver reported no result", pytrace=False)
    got = observed[scenario]
    if (
        isinstance(got, dict)
        and "unexpected" in got
        and not (isinstance(expected, dict) and "unexpected" in expected)
    ):
        pytest.fail(
            f"{client} × {scenario}: raised {got['unexpected']}\n{got.get('where', '')}", pytrace=False
        )
    diffs = _diff(expected, got)
    if diffs:
        pytest.fail(f"{client} × {scenario}: " + "; ".join(diffs), pytrace=False)


async def run_all_async(scenarios: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in scenarios.items():
        try:
            out[name] = await fn()
        except Exception as exc:
            out[name] = {
                "unexpected": f"{type(exc).__name__}: {exc}",
                "where": traceback.format_exc(limit=-3),
            }
    return out


def with_attempts(results: dict[str, Any], upstream: FakeOpenAI, client: str) -> dict[str, Any]:
    """``results`` with the number of requests for the client's flaky model that reached the fake upstream
    added to its 429-retry scenario (the client's retries included)."""
    retried = results.get("error_429_retry")
    if isinstance(retried, dict) and "content" in retried:
        model = flaky_model(client)
        retried["upstream_attempts"] = sum(1 for s in upstream.requests if s.body.get("model") == model)
    return results


def run_python_driver(module: str, base_url: str, arg: str, timeout_s: float = 120) -> dict[str, Any]:
    """Run a driver module as its own Python process (``python -m MODULE BASE_URL ARG`` prints JSON on its last
    line; ARG: the client's name, a profile)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", module, base_url, arg],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=root,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
