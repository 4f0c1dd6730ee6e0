"""CORS for every path (off unless ``server.cors_origins`` is set): pure ASGI, used by the fast path and the
FastAPI app alike."""

from __future__ import annotations

from typing import Any

from gateway.inference.asgi import Message, Receive, Scope, Send


class CORSMiddleware:
    """Off unless origins are configured. Allows the configured origins (or ``*``) and answers preflights."""

    def __init__(self, app: Any, origins: list[str]) -> None:
        self.app = app
        self.any = "*" in origins
        self.origins = {o.encode() for o in origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin is None or not (self.any or origin in self.origins):
            await self.app(scope, receive, send)
            return
        allow = b"*" if self.any else origin
        if scope["method"] == "OPTIONS" and any(
            k == b"access-control-request-method" for k, _ in scope["headers"]
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", allow),
                        (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE, OPTIONS"),
                        (
                            b"access-control-allow-headers",
                            b"authorization, content-type, api-key, x-request-id, x-pointsman-task, x-pointsman-tags, x-pointsman-sticky",
                        ),
                        (b"access-control-max-age", b"600"),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_cors(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = [
                    *msg.get("headers", []),
                    (b"access-control-allow-origin", allow),
                    (
                        b"access-control-expose-headers",
                        b"x-request-id, x-pointsman-backend, x-pointsman-model, x-pointsman-route, x-pointsman-cost-usd",
                    ),
                    (b"vary", b"Origin"),
                ]
            await send(msg)

        await self.app(scope, receive, send_cors)
