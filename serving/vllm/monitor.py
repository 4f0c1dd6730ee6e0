"""Background health and load scraping of vLLM endpoints; never on the request path.

Every ``health_interval_s`` each endpoint of a vLLM backend is asked for ``GET /health`` and ``GET /metrics``
(at the server root, beside ``/v1``). ``/health`` failing twice in a row (connection error, timeout or 5xx)
marks the endpoint unhealthy, so the pool skips it until a probe succeeds again; a server without ``/health``
(404) counts as healthy. From ``/metrics`` the gauges ``vllm:num_requests_waiting`` and
``vllm:num_requests_running`` (summed over their label sets) are kept on the endpoint: least-loaded selection
adds the queue a server reports to the requests this gateway has outstanding there, so load from other clients
and replicas is seen too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from serving.errors import UpstreamError
from serving.http_backend import OpenAIHTTPBackend
from serving.pool import Endpoint

log = logging.getLogger("pointsman.vllm")

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
_FAILS_TO_UNHEALTHY = 2


def server_root(url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000``."""
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def parse_gauges(text: str) -> dict[str, float]:
    """Sum of each vLLM queue gauge over its label sets, from Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:num_requests_"):
            continue
        if "{" in line:
            name, rest = line[: line.index("{")], line[line.rfind("}") + 1 :]
        else:
            name, _, rest = line.partition(" ")
        if name not in (WAITING, RUNNING):
            continue
        parts = rest.split()
        try:
            out[name] = out.get(name, 0.0) + float(parts[0])
        except (IndexError, ValueError):
            continue
    return out


class VLLMMonitor:
    def __init__(self, backend: OpenAIHTTPBackend, interval_s: float) -> None:
        self.backend = backend
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._fails: dict[str, int] = {}
        self.metrics_listeners: list[Callable[[str, str], None]] = []
        """Called with (endpoint URL, /metrics body) after each scrape (measured pricing reads the token
        counters from it, so an endpoint is scraped once per interval)."""
        self._timeout = min(max(interval_s, 0.5), 5.0)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"pointsman-vllm-monitor-{self.backend.name}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self.probe(e) for e in self.backend.pool.endpoints))
            await asyncio.sleep(self.interval_s)

    async def probe(self, ep: Endpoint) -> None:
        root = server_root(ep.url)
        try:
            status, _ = await self.backend.admin_request("GET", root + "/health", timeout_s=self._timeout)
            ok = status < 500
            if ok:
                status, body = await self.backend.admin_request(
                    "GET", root + "/metrics", timeout_s=self._timeout
                )
                text = body.decode() if status == 200 else ""
                gauges = parse_gauges(text)
                ep.waiting = gauges.get(WAITING, 0.0)
                ep.running = gauges.get(RUNNING, 0.0)
                for listener in self.metrics_listeners if text else ():
                    try:
                        listener(ep.url, text)
                    except Exception:  # a listener's bug must not mark the endpoint unhealthy
                        log.exception("vLLM /metrics listener failed for %s", root)
        except (UpstreamError, OSError, TimeoutError, UnicodeDecodeError) as exc:
            ok = False
            log.debug("vLLM probe of %s failed: %s", root, exc)
        except Exception as exc:  # the monitor must outlive anything a server sends
            ok = False
            log.warning("vLLM probe of %s failed: %r", root, exc)
        if ok:
            self._fails[ep.url] = 0
            if not ep.healthy:
                log.info("vLLM endpoint %s is healthy again", root)
            ep.healthy = True
            return
        fails = self._fails.get(ep.url, 0) + 1
        self._fails[ep.url] = fails
        if fails >= _FAILS_TO_UNHEALTHY and ep.healthy:
            log.warning("vLLM endpoint %s is unhealthy (%d failed health checks)", root, fails)
            ep.healthy = False
