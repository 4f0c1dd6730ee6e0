"""OpenAI-compatible HTTP backends (OpenAI itself, any compatible API, vLLM fleets) over aiohttp.

aiohttp is the hot-path client by measurement (see tests/bench): ~10x less CPU per proxied request than
httpx's async client on the reference machine. Exceptions are translated to ``serving.errors`` here.

Answers are read within bounds: a non-streamed answer up to ``max_response_bytes`` after decompression (the
gateway asks for ``gzip``/``deflate`` and inflates them itself, piece by piece as they are read —
``serving.decoding`` — so a small compressed body cannot expand in memory past the bound), an error answer's
body up to 64 KiB; past a bound the connection is closed and nothing more is read. Streams are relayed piece by
piece (their events are bounded by the relay's reader).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from serving.backend import BackendInfo, UpstreamCall, UpstreamResponse
from serving.config import OpenAIBackendConfig, VLLMBackendConfig
from serving.decoding import ACCEPT_ENCODING, PIECE, Decoder, UnsupportedEncoding
from serving.errors import (
    BackendOverloaded,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from serving.pool import Endpoint, EndpointPool

_MAX_ERROR_BODY = 64 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The largest non-streamed answer read (after decompression) unless ``server.max_response_bytes`` says."""


def translate(exc: BaseException, backend: str, endpoint: str, answering: bool = False) -> UpstreamError:
    """Map an aiohttp/OS exception to the most specific ``UpstreamError``; ``answering``: the upstream had
    started its answer (status and headers read), so a broken connection is a disconnect, not unreachable."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout("upstream timed out", backend=backend, endpoint=endpoint)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError) or (
        answering and isinstance(exc, aiohttp.ClientError | OSError)
    ):
        return UpstreamDisconnected("upstream closed the connection", backend=backend, endpoint=endpoint)
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
        return UpstreamConnectError("upstream unreachable", backend=backend, endpoint=endpoint)
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamProtocolError("invalid upstream response", backend=backend, endpoint=endpoint)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamConnectError("upstream connection failed", backend=backend, endpoint=endpoint)
    return UpstreamProtocolError("upstream call failed", backend=backend, endpoint=endpoint)


def _undecodable(backend: str, endpoint: str) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        "upstream sent a body its content-encoding cannot decode", backend=backend, endpoint=endpoint
    )


class HTTPStream:
    """An open SSE response. Iterating yields its bytes (decoded) as they arrive."""

    __slots__ = ("_resp", "_backend", "endpoint", "_release", "_closed", "_decoder")

    def __init__(
        self, resp: aiohttp.ClientResponse, backend: OpenAIHTTPBackend, ep: Endpoint, decoder: Decoder
    ) -> None:
        self._resp = resp
        self._backend = backend
        self.endpoint = ep.url
        self._release = ep
        self._closed = False
        self._decoder = decoder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        decoder = self._decoder
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                if decoder.identity:
                    yield chunk
                else:
                    for piece in decoder.feed(chunk):
                        yield piece
            tail = decoder.flush()
            if tail:
                yield tail
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise translate(exc, self._backend.name, self.endpoint, answering=True) from exc
        except zlib.error as exc:
            raise _undecodable(self._backend.name, self.endpoint) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        resp = self._resp
        if resp.content.at_eof():
            resp.release()
        else:
            # Closing the connection is what tells vLLM/OpenAI to stop generating.
            resp.close()
        self._backend._done(self._release)


class OpenAIHTTPBackend:
    """Raw pass-through to an OpenAI-compatible API; one aiohttp session, one pool of endpoints."""

    def __init__(
        self,
        name: str,
        cfg: OpenAIBackendConfig | VLLMBackendConfig,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.max_response_bytes = max_response_bytes
        urls = cfg.endpoints if isinstance(cfg, VLLMBackendConfig) else [cfg.base_url]
        self.pool = EndpointPool(urls)
        self_hosted = isinstance(cfg, VLLMBackendConfig)
        self.info = BackendInfo(name=name, type=cfg.type, self_hosted=self_hosted, endpoints=list(urls))
        self.accepts_metadata = not cfg.reject_metadata
        self.speaks_messages = False
        headers = {"content-type": "application/json", "accept-encoding": ACCEPT_ENCODING, **cfg.headers}
        if cfg.api_key:
            headers["authorization"] = f"Bearer {cfg.api_key}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=cfg.timeout_s, sock_connect=cfg.connect_timeout_s, sock_read=cfg.timeout_s
        )
        self.in_flight = 0
        self._cap = cfg.max_concurrency
        self.avoid: frozenset[str] = frozenset()

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.cfg.max_connections * len(self.pool),
                limit_per_host=self.cfg.max_connections,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False, trust_env=False
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reachable(self) -> bool:
        return any(e.healthy for e in self.pool.endpoints)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamConnectError("backend not started", backend=self.name)
        return self._session

    def _acquire(self, avoid: frozenset[str]) -> Endpoint:
        if self._cap is not None and self.in_flight >= self._cap:
            raise BackendOverloaded(f"backend {self.name} is at its concurrency limit", backend=self.name)
        ep = self.pool.pick(avoid)
        if ep is None:
            raise UpstreamConnectError("no healthy endpoint", backend=self.name)
        self.in_flight += 1
        ep.outstanding += 1
        return ep

    def _done(self, ep: Endpoint) -> None:
        self.in_flight -= 1
        ep.outstanding -= 1

    def _timeout_for(self, call: UpstreamCall) -> aiohttp.ClientTimeout:
        if call.timeout_s >= self.cfg.timeout_s:
            return self._timeout
        return aiohttp.ClientTimeout(
            total=call.timeout_s,
            sock_connect=min(self.cfg.connect_timeout_s, call.timeout_s),
            sock_read=call.timeout_s,
        )

    def _headers_for(self, call: UpstreamCall) -> dict[str, str]:
        if not call.request_id and not call.traceparent and not call.headers:
            return self._headers
        h = {**self._headers, "x-request-id": call.request_id} if call.request_id else dict(self._headers)
        if call.traceparent:
            h["traceparent"] = call.traceparent
        if call.headers:
            h.update(call.headers)
        return h

    async def _read(self, resp: aiohttp.ClientResponse, url: str, limit: int, cut: bool = False) -> bytes:
        """The body, decoded, up to ``limit`` bytes. Past it the connection is closed and the answer is refused
        (``UpstreamTooLarge``) — or, with ``cut``, its first ``limit`` bytes are kept (error bodies)."""
        try:
            decoder = Decoder(resp.headers.get("content-encoding"))
        except UnsupportedEncoding as exc:
            resp.close()
            if cut:
                return b""
            raise UpstreamProtocolError(
                f"upstream answered with content-encoding {str(exc)!r}, which the gateway did not ask for",
                backend=self.name,
                endpoint=url,
            ) from exc
        declared = resp.content_length
        if declared is not None and declared > limit and decoder.identity and not cut:
            resp.close()
            raise self._too_large(url)
        pieces: list[bytes] = []
        size = 0
        try:
            async for raw in resp.content.iter_any():
                for piece in decoder.feed(raw, min(PIECE, limit + 1)):
                    pieces.append(piece)
                    size += len(piece)
                    if size > limit:  # inflated no further than this piece
                        resp.close()  # nothing more is read
                        if cut:
                            return b"".join(pieces)[:limit]
                        pieces.clear()  # freed now, not when the exception's traceback (this frame) is collected
                        raise self._too_large(url)
            pieces.append(decoder.flush())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise translate(exc, self.name, url, answering=True) from exc
        except zlib.error as exc:
            resp.close()
            if cut:
                return b""
            raise _undecodable(self.name, url) from exc
        return b"".join(pieces)

    def _too_large(self, url: str) -> UpstreamTooLarge:
        return UpstreamTooLarge(
            f"The upstream's answer is larger than the gateway accepts (server.max_response_bytes: "
            f"{self.max_response_bytes} bytes, counted after decompression).",
            backend=self.name,
            endpoint=url,
        )

    async def _http_error(self, resp: aiohttp.ClientResponse, ep: Endpoint) -> UpstreamHTTPError:
        """An upstream error status, with its (bounded) body for pass-through and its Retry-After."""
        return UpstreamHTTPError(
            resp.status,
            await self._read(resp, ep.url, _MAX_ERROR_BODY, cut=True),
            backend=self.name,
            endpoint=ep.url,
            retry_after=resp.headers.get("retry-after"),
            content_type=resp.headers.get("content-type") or "application/json",
        )

    async def call(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> UpstreamResponse:
        ep = self._acquire(avoid)
        url = f"{ep.url}/{call.endpoint}"
        try:
            async with self.session.post(
                url,
                data=call.body,
                headers=self._headers_for(call),
                timeout=self._timeout_for(call),
            ) as resp:
                ctype = resp.headers.get("content-type", "")
                if resp.status >= 400:
                    raise await self._http_error(resp, ep)
                if "json" not in ctype:
                    resp.close()
                    raise UpstreamProtocolError(
                        f"upstream answered with content type {ctype or 'none'!r}, expected JSON",
                        backend=self.name,
                        endpoint=ep.url,
                    )
                body = await self._read(resp, ep.url, self.max_response_bytes)
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    parsed = None
                if not isinstance(parsed, dict):  # a broken answer: retryable, like a reset, never relayed
                    raise UpstreamProtocolError(
                        "upstream sent invalid JSON", backend=self.name, endpoint=ep.url
                    )
                return UpstreamResponse(
                    status=resp.status, body=body, content_type=ctype, endpoint=ep.url, parsed=parsed
                )
        except UpstreamError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise translate(exc, self.name, ep.url) from exc
        finally:
            self._done(ep)

    async def open_stream(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> HTTPStream:
        ep = self._acquire(avoid)
        url = f"{ep.url}/{call.endpoint}"
        resp: aiohttp.ClientResponse | None = None
        try:
            resp = await self.session.post(
                url,
                data=call.body,
                headers=self._headers_for(call),
                timeout=self._timeout_for(call),
            )
            ctype = resp.headers.get("content-type", "")
            if resp.status >= 400:
                raise await self._http_error(resp, ep)
            if "text/event-stream" not in ctype:
                raise UpstreamProtocolError(
                    f"upstream answered a stream with content type {ctype or 'none'!r}",
                    backend=self.name,
                    endpoint=ep.url,
                )
            try:
                decoder = Decoder(resp.headers.get("content-encoding"))
            except UnsupportedEncoding as exc:
                raise UpstreamProtocolError(
                    f"upstream answered a stream with content-encoding {str(exc)!r}, which the gateway did not "
                    "ask for",
                    backend=self.name,
                    endpoint=ep.url,
                ) from exc
            return HTTPStream(resp, self, ep, decoder)
        except BaseException as exc:
            if resp is not None:
                resp.close()
            self._done(ep)
            if isinstance(exc, aiohttp.ClientError | OSError | asyncio.TimeoutError):
                raise translate(exc, self.name, ep.url) from exc
            raise

    async def endpoint_models(self, ep: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The model objects ``GET {ep}/models`` lists (those with a string ``id``). Raises ``UpstreamError``:
        ``UpstreamHTTPError`` for an error status, ``UpstreamProtocolError`` for an answer that is no list."""
        status, body = await self.admin_request("GET", f"{ep}/models", timeout_s=timeout_s)
        if status != 200:
            raise UpstreamHTTPError(status, body[:_MAX_ERROR_BODY], backend=self.name, endpoint=ep)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                "invalid JSON from /v1/models", backend=self.name, endpoint=ep
            ) from None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise UpstreamProtocolError("unexpected /v1/models shape", backend=self.name, endpoint=ep)
        return [d for d in data if isinstance(d, dict) and isinstance(d.get("id"), str)]

    async def list_models(self, timeout_s: float = 5.0) -> list[str]:
        """The model ids every endpoint lists, in order of first appearance; an endpoint that does not answer
        is skipped, and only when none does is the first one's error raised."""
        got = await asyncio.gather(
            *(self.endpoint_models(ep, timeout_s) for ep in self.info.endpoints), return_exceptions=True
        )
        lists = [g for g in got if isinstance(g, list)]
        if not lists:
            failure = next((g for g in got if isinstance(g, UpstreamError)), None)
            raise failure or UpstreamConnectError("no endpoint listed its models", backend=self.name)
        return list(dict.fromkeys(str(m["id"]) for models in lists for m in models))

    async def admin_request(
        self, method: str, url: str, body: Any = None, timeout_s: float = 10.0
    ) -> tuple[int, bytes]:
        """Admin/background helper (vLLM LoRA load/unload, ``/metrics``): one request off the request path.

        Returns (status, body) for any HTTP status; only transport failures raise (as ``UpstreamError``).
        """
        data = None if body is None else orjson.dumps(body)
        try:
            async with self.session.request(
                method, url, data=data, headers=self._headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                return resp.status, await self._read(resp, url, self.max_response_bytes)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise translate(exc, self.name, url) from exc
