"""OpenAI-compatible HTTP backends (OpenAI itself, any compatible API, vLLM fleets) over the gateway's own pooled
HTTP/1.1 client (``serving.http_client``, chosen over aiohttp by measurement: tests/bench).

Answers are read within bounds: a non-streamed answer up to ``max_response_bytes`` after decompression (the
gateway asks for ``gzip``/``deflate`` and inflates them itself, piece by piece as they are read —
``serving.decoding`` — so a small compressed body cannot expand in memory past the bound), an error answer's
body up to 64 KiB; past a bound the connection is closed and nothing more is read. Streams are relayed piece by
piece (their events are bounded by the relay's reader).

An error answer's body is kept for the client (``gateway.errors``) with the backend's own credentials masked in it
(``***``), should the upstream (or a proxy in front of it) echo the request's headers back.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from serving.backend import BackendInfo, UpstreamCall, UpstreamResponse
from serving.config import OpenAIBackendConfig, VLLMBackendConfig
from serving.decoding import ACCEPT_ENCODING, PIECE, Decoder, UnsupportedEncoding
from serving.errors import (
    BackendOverloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTooLarge,
)
from serving.http_client import HttpClient, Response, Timeouts
from serving.http_request import header_lines
from serving.pool import Endpoint, EndpointPool

_MAX_ERROR_BODY = 64 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The largest non-streamed answer read (after decompression) unless ``server.max_response_bytes`` says."""
_POST = b"POST"
_SAFE_VALUE = re.compile(r"[\x20-\x7e]+")
"""A header value that needs no checking or encoding (printable ASCII)."""
_UNSAFE = re.compile(r"[^\x20-\x7e]")
MASK = b"***"
"""In place of a backend's credential in an upstream's error body."""
MIN_MASKED = 8
"""Credentials shorter than this are not looked for in error bodies: no key is that short, and masking a short
header value (a flag, a version) would garble ordinary text."""


def _undecodable(backend: str, endpoint: str) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        "upstream sent a body its content-encoding cannot decode", backend=backend, endpoint=endpoint
    )


class HTTPStream:
    """An open SSE response. Iterating yields its bytes (decoded) as they arrive. (An iterator class rather than an
    async generator, which the compiled build could not compile: docs/design.md.)"""

    __slots__ = (
        "_resp",
        "_backend",
        "endpoint",
        "headers",
        "_release",
        "_closed",
        "_decoder",
        "_pieces",
        "_ended",
    )

    def __init__(self, resp: Response, backend: OpenAIHTTPBackend, ep: Endpoint, decoder: Decoder) -> None:
        self._resp = resp
        self._backend = backend
        self.endpoint = ep.url
        self.headers: Sequence[tuple[bytes, bytes]] = resp.headers
        self._release = ep
        self._closed = False
        self._decoder = decoder
        self._pieces: Iterator[bytes] | None = None
        """The decoded pieces of a compressed chunk not handed out yet."""
        self._ended = False

    def __aiter__(self) -> HTTPStream:
        return self

    async def __anext__(self) -> bytes:
        decoder = self._decoder
        try:
            while True:
                pieces = self._pieces
                if pieces is not None:
                    piece = next(pieces, b"")
                    if piece:
                        return piece
                    self._pieces = None
                if self._ended:
                    raise StopAsyncIteration
                chunk = await self._resp.read()
                if not chunk:
                    self._ended = True
                    tail = decoder.flush()
                    if tail:
                        return tail
                    raise StopAsyncIteration
                if decoder.identity:
                    return chunk
                self._pieces = decoder.feed(chunk)
        except zlib.error as exc:
            raise _undecodable(self._backend.name, self.endpoint) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        resp = self._resp
        if resp.at_eof:
            resp.release()
        else:
            # Closing the connection is what tells vLLM/OpenAI to stop generating.
            resp.close()
        self._backend._done(self._release)


class OpenAIHTTPBackend:
    """Raw pass-through to an OpenAI-compatible API; one pooled client, one pool of endpoints."""

    def __init__(
        self,
        name: str,
        cfg: OpenAIBackendConfig | VLLMBackendConfig,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        """``default_headers`` are sent on every request that does not carry a client's header of the same name
        (compared case-insensitively), which replaces them: Anthropic's ``anthropic-version``."""
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
        self._fixed = header_lines(headers)
        secrets = {v.encode() for v in (cfg.api_key, *cfg.headers.values()) if v and len(v) >= MIN_MASKED}
        self._secrets = sorted(secrets, key=len, reverse=True)
        """The backend's credentials (``api_key``, every header value: ``gateway.credentials``), longest first."""
        self._defaults = dict(default_headers or {})
        self._default_names = {k.lower(): k for k in self._defaults}
        self._headers = self._fixed + header_lines(self._defaults)
        self._replaced: dict[frozenset[str], bytes] = {}
        """The fixed and default header lines less the defaults a client replaced, by the names replaced."""
        self._client: HttpClient | None = None
        self._timeouts = Timeouts(cfg.timeout_s, cfg.connect_timeout_s, cfg.timeout_s)
        self.in_flight = 0
        self._cap = cfg.max_concurrency
        self.avoid: frozenset[str] = frozenset()

    async def start(self) -> None:
        if self._client is None:
            self._client = HttpClient(
                self.name,
                per_host=self.cfg.max_connections,
                total=self.cfg.max_connections * len(self.pool),
                keepalive_s=self.cfg.idle_timeout_s,
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def reachable(self) -> bool:
        return any(e.healthy for e in self.pool.endpoints)

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            raise UpstreamConnectError("backend not started", backend=self.name)
        return self._client

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

    def _timeouts_for(self, call: UpstreamCall) -> Timeouts:
        if call.timeout_s >= self.cfg.timeout_s:
            return self._timeouts
        return Timeouts(call.timeout_s, min(self.cfg.connect_timeout_s, call.timeout_s), call.timeout_s)

    def _headers_for(self, call: UpstreamCall) -> bytes:
        if not call.request_id and not call.traceparent and not call.headers:
            return self._headers
        out = self._headers
        if call.headers and self._default_names:  # a client's header replaces the default of its name
            out = self._without_defaults(call.headers)
        try:
            if value := call.request_id:
                if _SAFE_VALUE.fullmatch(value) is None:  # (the gateway's own ids always are)
                    value = _UNSAFE.sub("?", value)
                out += b"x-request-id: %s\r\n" % value.encode("ascii")
            if call.traceparent:  # the gateway's own (``wire.traceparent``: lower-case hex ids and dashes)
                out += b"traceparent: %s\r\n" % call.traceparent.encode("ascii")
            if call.headers:  # a client's own header values, as it sent them
                out += header_lines(dict(call.headers), "latin-1")
        except ValueError as exc:
            raise UpstreamProtocolError(str(exc), backend=self.name) from None
        return out

    def _without_defaults(self, sent: Mapping[str, str]) -> bytes:
        """The fixed and default header lines, less the defaults named in ``sent``."""
        replaced = frozenset(n for k in sent if (n := k.lower()) in self._default_names)
        if not replaced:
            return self._headers
        lines = self._replaced.get(replaced)
        if lines is None:
            kept = {k: v for k, v in self._defaults.items() if k.lower() not in replaced}
            lines = self._replaced[replaced] = self._fixed + header_lines(kept)
        return lines

    async def _read(self, resp: Response, url: str, limit: int, cut: bool = False) -> bytes:
        """The body, decoded, up to ``limit`` bytes. Past it the connection is closed and the answer is refused
        (``UpstreamTooLarge``) — or, with ``cut``, its first ``limit`` bytes are kept (error bodies)."""
        encoding = resp.header(b"content-encoding")
        if encoding is None and not cut:
            whole = resp.arrived_whole()  # already here, not compressed: no decoder and no reads
            if whole is not None:
                if len(whole) > limit:
                    resp.close()
                    raise self._too_large(url)
                resp.release()
                return whole
        try:
            decoder = Decoder(encoding)
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
            while True:
                raw = await resp.read()
                if not raw:
                    break
                if decoder.identity:
                    pieces.append(raw)
                    size += len(raw)
                else:
                    for piece in decoder.feed(raw, min(PIECE, limit + 1)):
                        pieces.append(piece)
                        size += len(piece)
                        if size > limit:  # inflated no further than this piece
                            break
                if size > limit:
                    resp.close()  # nothing more is read
                    if cut:
                        return b"".join(pieces)[:limit]
                    pieces.clear()  # freed now, not when the exception's traceback (this frame) is collected
                    raise self._too_large(url)
            tail = decoder.flush()
            if tail:
                pieces.append(tail)
        except zlib.error as exc:
            resp.close()
            if cut:
                return b""
            raise _undecodable(self.name, url) from exc
        except BaseException:
            resp.close()
            raise
        resp.release()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _too_large(self, url: str) -> UpstreamTooLarge:
        return UpstreamTooLarge(
            f"The upstream's answer is larger than the gateway accepts (server.max_response_bytes: "
            f"{self.max_response_bytes} bytes, counted after decompression).",
            backend=self.name,
            endpoint=url,
        )

    def _masked(self, body: bytes) -> bytes:
        """``body`` with every credential of the backend in it replaced by ``***``."""
        for secret in self._secrets:
            if secret in body:
                body = body.replace(secret, MASK)
        return body

    async def _http_error(self, resp: Response, ep: Endpoint) -> UpstreamHTTPError:
        """An upstream error status, with its (bounded, masked) body for pass-through, its ``retry-after`` and
        ``retry-after-ms``, and its header lines."""
        return UpstreamHTTPError(
            resp.status,
            self._masked(await self._read(resp, ep.url, _MAX_ERROR_BODY, cut=True)),
            backend=self.name,
            endpoint=ep.url,
            retry_after=resp.header(b"retry-after"),
            content_type=resp.header(b"content-type") or "application/json",
            retry_after_ms=resp.header(b"retry-after-ms"),
            headers=resp.headers,
        )

    def _post(self, call: UpstreamCall, ep: Endpoint) -> Awaitable[Response]:
        """The upstream request of ``call`` to ``ep``: its headers, the body as built, its timeouts."""
        return self.client.request(
            _POST,
            f"{ep.url}/{call.endpoint}",
            self._headers_for(call),
            call.body,
            self._timeouts_for(call),
            ep.url,
        )

    async def call(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> UpstreamResponse:
        ep = self._acquire(avoid)
        try:
            resp = await self._post(call, ep)
            try:
                ctype = resp.header(b"content-type") or ""
                if resp.status >= 400:
                    raise await self._http_error(resp, ep)
                if "json" not in ctype:
                    raise UpstreamProtocolError(
                        f"upstream answered with content type {ctype or 'none'!r}, expected JSON",
                        backend=self.name,
                        endpoint=ep.url,
                    )
                body = await self._read(resp, ep.url, self.max_response_bytes)
            finally:
                resp.close()  # a no-op once the body was read to its end (the connection went back to the pool)
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):  # a broken answer: retryable, like a reset, never relayed
                raise UpstreamProtocolError("upstream sent invalid JSON", backend=self.name, endpoint=ep.url)
            return UpstreamResponse(
                status=resp.status,
                body=body,
                content_type=ctype,
                endpoint=ep.url,
                parsed=parsed,
                headers=resp.headers,
            )
        finally:
            self._done(ep)

    async def open_stream(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> HTTPStream:
        ep = self._acquire(avoid)
        resp: Response | None = None
        try:
            resp = await self._post(call, ep)
            ctype = resp.header(b"content-type") or ""
            if resp.status >= 400:
                raise await self._http_error(resp, ep)
            if "text/event-stream" not in ctype:
                raise UpstreamProtocolError(
                    f"upstream answered a stream with content type {ctype or 'none'!r}",
                    backend=self.name,
                    endpoint=ep.url,
                )
            try:
                decoder = Decoder(resp.header(b"content-encoding"))
            except UnsupportedEncoding as exc:
                raise UpstreamProtocolError(
                    f"upstream answered a stream with content-encoding {str(exc)!r}, which the gateway did not "
                    "ask for",
                    backend=self.name,
                    endpoint=ep.url,
                ) from exc
            return HTTPStream(resp, self, ep, decoder)
        except BaseException:
            if resp is not None:
                resp.close()
            self._done(ep)
            raise

    async def endpoint_models(self, ep: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The model objects ``GET {ep}/models`` lists (those with a string ``id``). Raises ``UpstreamError``:
        ``UpstreamHTTPError`` for an error status, ``UpstreamProtocolError`` for an answer that is no list."""
        status, body = await self.admin_request("GET", f"{ep}/models", timeout_s=timeout_s)
        if status != 200:
            raise UpstreamHTTPError(
                status, self._masked(body[:_MAX_ERROR_BODY]), backend=self.name, endpoint=ep
            )
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

    async def stored_request(
        self, method: str, endpoint: str, path: str, query: str, timeout_s: float
    ) -> UpstreamResponse:
        """A request about something the provider stores (the Responses API's ``GET``/``DELETE
        /responses/{id}``, ``/input_items``, ``/cancel``), sent to ``endpoint`` (one of this backend's: where it is
        stored) with the backend's credentials; ``path`` under the endpoint, ``query`` as the client sent it (or
        empty). Any status is returned as an answer, the body bounded and its credentials masked; only transport
        failures raise (``UpstreamError``)."""
        if endpoint not in self.pool.urls():
            raise UpstreamConnectError(
                f"{endpoint} is no longer an endpoint of this backend", backend=self.name
            )
        url = f"{endpoint}/{path}" + (f"?{query}" if query else "")
        resp = await self._off_path(method, url, None, timeout_s)
        try:
            body = await self._read(resp, endpoint, self.max_response_bytes, cut=resp.status >= 400)
        finally:
            resp.close()
        return UpstreamResponse(
            status=resp.status,
            body=self._masked(body) if resp.status >= 400 else body,
            content_type=resp.header(b"content-type") or "application/json",
            endpoint=endpoint,
            headers=resp.headers,
        )

    async def admin_request(
        self, method: str, url: str, body: Any = None, timeout_s: float = 10.0
    ) -> tuple[int, bytes]:
        """Admin/background helper (vLLM LoRA load/unload, ``/health``, ``/metrics``): one request off the request
        path. Returns (status, body) for any HTTP status; only transport failures raise (as ``UpstreamError``).
        """
        resp = await self._off_path(method, url, None if body is None else orjson.dumps(body), timeout_s)
        try:
            return resp.status, await self._read(resp, url, self.max_response_bytes)
        finally:
            resp.close()

    def _off_path(self, method: str, url: str, data: bytes | None, timeout_s: float) -> Awaitable[Response]:
        """One request off the request path, with the backend's credentials and one timeout for all of it."""
        return self.client.request(
            method.encode("ascii"),
            url,
            self._headers,
            data,
            Timeouts(timeout_s, min(timeout_s, self.cfg.connect_timeout_s), timeout_s),
        )
