"""The fake upstream: one nginx process (pinned next to the load generator) with two servers.

* ``chat_port``: POST /v1/chat/completions -> a fixed ``chat.completion`` JSON body with usage.
* ``sse_port``: any POST -> a fixed SSE body (17 content chunks, a usage chunk, ``data: [DONE]``),
  sent at once, so a relay is measured on its relaying cost rather than on token gaps.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.bench import fixtures, procs

_CONF = """\
worker_processes 1;
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  server_tokens off;
  tcp_nodelay on;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_buffer_size 64k;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{chat_port} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json;
{chat}
    }}
    location / {{ return 404; }}
  }}
  server {{
    listen 127.0.0.1:{sse_port} backlog=4096;
    location / {{
      default_type text/event-stream;
      add_header Cache-Control no-cache;
{sse}
    }}
  }}
}}
"""


def _return(name: str, text: str, piece: int = 3000) -> str:
    """nginx directives answering 200 with ``text``: an nginx token holds at most 4 KB, so longer
    bodies are split over ``set`` variables that ``return`` joins."""
    if any(c in text for c in "'$\\"):
        raise ValueError("fixture body not representable as an nginx literal")
    parts = [text[i : i + piece] for i in range(0, len(text), piece)]
    lines = [f"      set ${name}{i} '{part}';" for i, part in enumerate(parts)]
    joined = "".join(f"${name}{i}" for i in range(len(parts)))
    return "\n".join([*lines, f"      return 200 '{joined}';"])


@dataclass
class Upstream:
    proc: subprocess.Popen[bytes]
    chat_port: int
    sse_port: int

    @property
    def chat_base(self) -> str:
        """OpenAI base URL (``.../v1``) of the non-streaming server."""
        return f"http://127.0.0.1:{self.chat_port}/v1"

    @property
    def sse_base(self) -> str:
        """OpenAI base URL (``.../v1``) of the streaming server."""
        return f"http://127.0.0.1:{self.sse_port}/v1"


async def start(workdir: Path, cpu: int | None) -> Upstream:
    workdir.mkdir(parents=True, exist_ok=True)
    chat_port, sse_port = procs.free_port(), procs.free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        _CONF.format(
            dir=workdir,
            chat_port=chat_port,
            sse_port=sse_port,
            chat=_return("chat", fixtures.completion_body()),
            sse=_return("sse", fixtures.sse_body()),
        )
    )
    argv = procs.pinned(cpu, ["nginx", "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")])
    up = Upstream(procs.spawn(argv, workdir / "nginx.out"), chat_port, sse_port)
    await _wait_ready(up, workdir)
    return up


async def _wait_ready(up: Upstream, workdir: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(500):
            if up.proc.poll() is not None:
                raise RuntimeError(f"nginx exited; see {workdir}/error.log and nginx.out")
            try:
                async with session.post(f"{up.sse_base}/chat/completions", data=b"{}") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    raise RuntimeError("nginx did not come up within 5 s")
