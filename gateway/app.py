"""The ASGI application: a dict dispatch for the inference hot path (and the probes: liveness, readiness, the
metrics scrape) in front of a FastAPI app for the rest, built on the first request that needs it
(``gateway.api_app``).

The app owns its lifespan (backends, accountant, stores) through ``GatewayState``, which
``gateway.assembly.assemble`` builds; no module globals.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway import probes
from gateway.assembly import assemble
from gateway.build import compiled_modules
from gateway.config import GatewayConfig
from gateway.cors import CORSMiddleware
from gateway.heap import settle
from gateway.http_server import install_drain
from gateway.inference.asgi import Receive, Scope, Send, send_json
from gateway.startup_report import report
from gateway.state import GatewayState
from wire.anthropic.errors import error_body as anthropic_error_body
from wire.endpoints import ANTHROPIC, REQUIRED_FIELD
from wire.errors import error_body

log = logging.getLogger("pointsman")

INFERENCE_PATHS = {f"/v1/{ep}": ep for ep in REQUIRED_FIELD}


class GatewayApp:
    """The ASGI callable uvicorn runs."""

    def __init__(self, config: GatewayConfig, state: GatewayState | None = None) -> None:
        self.state = state or assemble(config)
        self.inference = self.state.inference
        self.cors = bool(config.server.cors_origins)
        self._slow_path: Any = None
        self.settle_heap = False
        """Freeze the heap once start-up is complete (``gateway.heap``): set by ``pointsman serve``, not by the
        applications tests run in their own process."""

    @property
    def slow_path(self) -> Any:
        """The FastAPI app behind its middleware: built on first use (synchronously, so once)."""
        if self._slow_path is None:
            from gateway.api_app import build_slow_path

            self._slow_path = build_slow_path(self.state)
        return self._slow_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        typ = scope["type"]
        if typ == "http":
            ep = INFERENCE_PATHS.get(scope["path"])
            if ep is not None and not self.cors:
                if scope["method"] == "POST":
                    await self.inference.handle(scope, receive, send, ep)
                    return
                said = f"Method {scope['method']} not allowed."
                await send_json(
                    send,
                    405,
                    anthropic_error_body(said, "invalid_request_error")
                    if ep in ANTHROPIC
                    else error_body(said, "invalid_request_error", "method_not_allowed"),
                    [(b"allow", b"POST")],
                )
                return
            if ep is not None and scope["method"] == "POST":
                await self.slow_path_inference(scope, receive, send, ep)
                return
            if scope["path"] in probes.PATHS and scope["method"] == "GET":
                await self.probe(scope, receive, send)
                return
            await self.slow_path(scope, receive, send)
        elif typ == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.slow_path(scope, receive, send)

    async def slow_path_inference(self, scope: Scope, receive: Receive, send: Send, ep: str) -> None:
        async def app(s: Scope, r: Receive, se: Send) -> None:
            await self.inference.handle(s, r, se, ep)

        await CORSMiddleware(app, self.state.config.server.cors_origins)(scope, receive, send)

    async def probe(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.cors:
            await probes.answer(self.state, scope, receive, send)
            return

        async def app(s: Scope, r: Receive, se: Send) -> None:
            await probes.answer(self.state, s, r, se)

        await CORSMiddleware(app, self.state.config.server.cors_origins)(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.state.start()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                install_drain(self.state.begin_drain, self.state.config.server.drain_delay_s)
                rt = self.state.runtime
                for level, line in report(self.state.config, rt.config, rt.version, compiled_modules()):
                    log.log(level, "%s", line)
                if self.settle_heap:
                    settle()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    await self.state.close()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(config: GatewayConfig) -> GatewayApp:
    return GatewayApp(config)
