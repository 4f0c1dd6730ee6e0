"""Liveness, readiness and the Prometheus scrape: answered on the fast path, without the FastAPI app.

Load balancers, orchestrators and Prometheus call these from a process's first second on, so they must not
wait for (or trigger) the build of the admin app (``gateway.api_app``, built on the first request that needs
it). The FastAPI routes of the same paths (``gateway.public``: other methods, CORS, the OpenAPI schema) answer
with the same functions.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.inference.asgi import Receive, Scope, Send
from gateway.request_ids import request_id
from gateway.state import GatewayState

HEALTHZ, READYZ, METRICS = "/healthz", "/readyz", "/metrics"
PATHS = frozenset({HEALTHZ, READYZ, METRICS})
LIVE = {"status": "ok"}


def readiness(state: GatewayState) -> tuple[int, dict[str, Any]]:
    """``/readyz``: 200 once started (config loaded, backends known), 503 while starting or draining."""
    rt = state.runtime
    ok = state.ready and not state.draining
    return 200 if ok else 503, {
        "status": "ready" if ok else ("draining" if state.draining else "starting"),
        "policy_version": rt.version,
        "backends": sorted(rt.config.backends),
        "models": len(rt.config.models),
    }


async def answer(state: GatewayState, scope: Scope, receive: Receive, send: Send) -> None:
    """A ``GET`` of one of ``PATHS``."""
    path = scope["path"]
    ctype = b"application/json"
    status = 200
    if path == HEALTHZ:
        body = orjson.dumps(LIVE)
    elif path == READYZ:
        status, doc = readiness(state)
        body = orjson.dumps(doc)
    else:
        body, text = state.accountant.metrics_payload()
        ctype = text.encode()
    rid: bytes | None = None
    for k, v in scope["headers"]:
        if k == b"x-request-id":
            rid = v
            break
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", b"%d" % len(body)),
                (b"content-type", ctype),
                (b"x-request-id", request_id(rid).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
