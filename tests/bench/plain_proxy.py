"""Plain pass-through proxy: FastAPI + uvicorn (uvloop, httptools) + one aiohttp ClientSession.

The baseline pointsman is measured against. It does what any gateway must do and nothing else:
parse the JSON body once (to see ``stream``), forward the bytes with the upstream key, and relay the
response (streams chunk by chunk, releasing the upstream connection when the relay ends, also on a
client disconnect).

    python tests/bench/plain_proxy.py --port 8001 \\
        --upstream http://127.0.0.1:8080/v1 --stream-upstream http://127.0.0.1:8081/v1
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse


def create_app(upstream: str, stream_upstream: str, api_key: str) -> FastAPI:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    chat_url = f"{upstream}/chat/completions"
    stream_url = f"{stream_upstream}/chat/completions"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
        yield
        await app.state.session.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await request.body()
        stream = bool(orjson.loads(body).get("stream"))
        session: aiohttp.ClientSession = request.app.state.session
        resp = await session.post(stream_url if stream else chat_url, data=body, headers=headers)
        if stream:
            return StreamingResponse(_relay(resp), status_code=resp.status, media_type="text/event-stream")
        try:
            content = await resp.read()
        finally:
            resp.release()
        return Response(content, status_code=resp.status, media_type=resp.content_type)

    return app


async def _relay(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    finally:
        resp.release()  # closes (not pools) the connection if the body was not read to the end


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="OpenAI base URL for non-streaming requests")
    parser.add_argument("--stream-upstream", required=True, help="OpenAI base URL for streaming requests")
    parser.add_argument("--api-key", default="sk-up")
    args = parser.parse_args()
    app = create_app(args.upstream, args.stream_upstream, args.api_key)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
