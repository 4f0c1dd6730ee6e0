"""Run the real gateway for tests: in a thread under uvicorn (fast) or as a ``pointsman serve`` process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from gateway.app import GatewayApp, create_app
from gateway.config import GatewayConfig, validate_document
from gateway.http_server import protocol_for
from tests.fakes.server import free_port


def as_config(doc: dict[str, Any] | GatewayConfig) -> GatewayConfig:
    return doc if isinstance(doc, GatewayConfig) else validate_document(doc, "<test>")


def with_data_dir(config: dict[str, Any] | GatewayConfig, data_dir: str) -> dict[str, Any] | GatewayConfig:
    """``config`` with ``server.data_dir`` set when the test left it at the default (``./data`` in the cwd would
    share stored policy and ledgers between unrelated gateways)."""
    if isinstance(config, GatewayConfig):
        if "data_dir" in config.server.model_fields_set:
            return config
        return config.model_copy(update={"server": config.server.model_copy(update={"data_dir": data_dir})})
    server = config.get("server") or {}
    if "data_dir" in server:
        return config
    return {**config, "server": {**server, "data_dir": data_dir}}


HUNG_STOPS: list[str] = []
"""In-process gateways that had not stopped 15 s after being asked, each with its tasks and where they wait."""


class _PromptServer(uvicorn.Server):
    """uvicorn's server, stopped without its fixed waits: a 0.1 s tick before it notices ``should_exit``, a 0.1 s
    pause after asking connections to close, 0.1 s polls while they drain (the suite starts and stops an
    in-process gateway hundreds of times: those waits were minutes of the default tier). Shutdown does what
    uvicorn's does, in its order: stop listening, ask each connection to close (at once when idle, after its
    answer when busy), wait for connections and tasks up to ``timeout_graceful_shutdown`` (then cancel the
    tasks), then the application's lifespan shutdown. ``pointsman serve`` runs uvicorn's own
    (``GatewayProcess``)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    def exit_soon(self) -> None:
        """From any thread: stop serving now."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)

    def where_it_waits(self) -> str:
        """From another thread: the server's tasks, each with where it waits (for a stop that hangs)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return " (its event loop has closed)"
        done: concurrent.futures.Future[str] = concurrent.futures.Future()

        def collect() -> None:
            lines = []
            for task in asyncio.all_tasks(loop):
                where, coro = [], task.get_coro()
                while coro is not None:  # down the chain of awaits to where it waits
                    f = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                    if f is not None:
                        where.append(f"\n    {f.f_code.co_qualname} ({f.f_code.co_filename}:{f.f_lineno})")
                    coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                lines.append(f"\n  {task.get_name()}:{''.join(where) or ' not started'}")
            done.set_result("".join(lines))

        loop.call_soon_threadsafe(collect)
        try:
            return done.result(5)
        except concurrent.futures.TimeoutError:
            return " (its event loop is blocked)"

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        await asyncio.sleep(0)
        while (state.connections or state.tasks) and not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.005)
        if state.tasks and not self.force_exit and loop.time() >= deadline:
            for task in state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


class RunningGateway:
    """The gateway app under a real uvicorn server on loopback, in a background thread."""

    def __init__(self, config: dict[str, Any] | GatewayConfig, port: int | None = None) -> None:
        self._data = tempfile.mkdtemp(prefix="pointsman-test-")
        self.config = as_config(with_data_dir(config, self._data))
        self.port = port or free_port()
        self.app: GatewayApp = create_app(self.config)
        self.server: _PromptServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def state(self) -> Any:
        return self.app.state

    def start(self) -> RunningGateway:
        cfg = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http=protocol_for(self.config.server),  # the protocol `pointsman serve` runs
            proxy_headers=False,
            lifespan="on",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=self.config.server.keep_alive_timeout_s,  # as `pointsman serve` (uvicorn_settings)
        )
        self.server = server = _PromptServer(cfg)
        ended: list[BaseException] = []

        def serve() -> None:
            try:
                server.run()
            except BaseException as exc:  # (uvicorn exits with SystemExit when it cannot bind or start up)
                ended.append(exc)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        deadline = time.time() + 15
        while not server.started:
            if not self.thread.is_alive():
                why = f"{type(ended[0]).__name__}: {ended[0]}" if ended else "it returned"
                raise RuntimeError(
                    f"gateway did not start on port {self.port}: its server thread ended ({why})"
                )
            if time.time() > deadline:
                raise RuntimeError(
                    f"gateway did not start on port {self.port} within 15 s (the lifespan "
                    f"{'completed' if self.app.state.ready else 'had not completed'})"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.exit_soon()
        if self.thread is not None:
            self.thread.join(15)
            if (
                self.thread.is_alive() and self.server is not None
            ):  # (printed at the end of the run: conftest.py)
                HUNG_STOPS.append(
                    f"port {self.port}, {time.strftime('%H:%M:%S')}:{self.server.where_it_waits()}"
                )
        shutil.rmtree(self._data, ignore_errors=True)

    def __enter__(self) -> RunningGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


STARTED: list[GatewayProcess] = []
"""Every ``GatewayProcess`` started in this test session, in order (a failing test's report shows their logs:
``tests/conftest.py``)."""


def logs_for_report(since: int) -> list[tuple[str, str]]:
    """The end of the log of each gateway started since ``STARTED[since]`` or still running, for a test report."""
    out = []
    for i, gw in enumerate(STARTED):
        if i >= since or (gw.proc is not None and gw.proc.poll() is None):
            try:
                text = gw.log.read_text(errors="replace")[-6000:]
            except OSError:
                continue
            out.append((f"pointsman serve log (port {gw.port})", text))
    return out


class GatewayProcess:
    """``pointsman serve`` as a separate process (for signals, workers, restarts)."""

    def __init__(
        self,
        config: dict[str, Any],
        tmp: Path,
        workers: int = 1,
        port: int | None = None,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        """``command``: what runs ``pointsman`` (default: this Python's ``-m gateway.cli``; a virtual
        environment's ``bin/pointsman`` runs what is installed there)."""
        self.port = port or free_port()
        self.command = command or [sys.executable, "-m", "gateway.cli"]
        self.path = tmp / f"gateway-{self.port}.yaml"
        config = with_data_dir(config, str(tmp / "data"))  # type: ignore[assignment]
        self.path.write_text(yaml.safe_dump(config))
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self, timeout: float = 20) -> GatewayProcess:
        self._logf = open(self.log, "ab")
        STARTED.append(self)
        self.proc = subprocess.Popen(
            [
                *self.command,
                "serve",
                "--config",
                str(self.path),
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway not ready: {self.log.read_text()[-3000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "_logf"):
            self._logf.close()
