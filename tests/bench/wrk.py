"""Closed-loop maximum throughput with wrk (POST bodies via a Lua script)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from tests.bench import fixtures, procs

_MARK = "WRK_JSON "
_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
_PAUSE = """\
function delay()
  return {ms}
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed responses, any status
    duration_s: float
    status_errors: int  # non-2xx/3xx responses
    socket_errors: int  # connect + read + write + timeout

    @property
    def ok_per_s(self) -> float:
        """Successful responses per second."""
        return (self.requests - self.status_errors) / self.duration_s

    @property
    def ok(self) -> int:
        return self.requests - self.status_errors


def write_script(
    path: Path, *, stream: bool, headers: dict[str, str] | None = None, pause_ms: int = 0
) -> Path:
    """The Lua script: the bench's request body and headers, and ``headers`` besides (a peer's routing).
    ``pause_ms`` > 0: each connection waits that long after an answer before its next request (wrk's ``delay``),
    so ``c`` connections offer about ``c / (pause + latency)`` requests per second: a paced load, not the most
    the target can take."""
    sent = fixtures.request_headers() | (headers or {})
    headers_lua = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in sent.items())
    body = fixtures.request_body(stream=stream).decode()
    text = _LUA.format(body=body, headers=headers_lua, mark=_MARK)
    if pause_ms > 0:
        text += _PAUSE.format(ms=pause_ms)
    path.write_text(text)
    return path


async def run(url: str, script: Path, *, duration_s: float, connections: int, cpu: int | None) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "5s"]
    argv = procs.pinned(cpu, [*argv, "-s", str(script), url])
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    for line in text.splitlines():
        if line.startswith(_MARK):
            d = json.loads(line[len(_MARK) :])
            return WrkResult(
                requests=d["requests"],
                duration_s=d["duration_us"] / 1e6,
                status_errors=d["status"],
                socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
            )
    raise RuntimeError(f"wrk printed no summary (exit {proc.returncode}):\n{text}")
