"""Content-Encoding of upstream answers (gzip, deflate), decoded by the gateway itself, a bounded piece at a time.

The gateway asks for compressed answers (``accept-encoding: gzip, deflate``) and inflates them here: output comes
in pieces of at most ``max_out`` bytes and no further than the caller reads, so a small compressed body cannot
expand in memory past the caller's bound (``server.max_response_bytes``, the relay's ``max_event_bytes``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

ACCEPT_ENCODING = "gzip, deflate"
"""What the gateway asks upstreams for (``accept-encoding``): exactly what ``Decoder`` reads."""
PIECE = 256 * 1024
"""Decoded bytes per piece unless the caller asks for fewer."""


class UnsupportedEncoding(ValueError):
    """A ``content-encoding`` the gateway did not ask for."""


class Decoder:
    """Decodes one answer's body; ``feed`` the raw bytes as they arrive, then ``flush``. Raises ``zlib.error`` on
    a body its encoding cannot decode."""

    __slots__ = ("_kind", "_z", "_pending")

    def __init__(self, content_encoding: str | None) -> None:
        kind = (content_encoding or "").strip().lower()
        if kind in ("", "identity"):
            kind = ""
        elif kind == "x-gzip":
            kind = "gzip"
        elif kind not in ("gzip", "deflate"):
            raise UnsupportedEncoding(kind)
        self._kind = kind
        self._z: Any = None
        self._pending = b""
        """deflate: a first byte held until the second tells zlib-wrapped from raw deflate."""

    @property
    def identity(self) -> bool:
        return not self._kind

    def feed(self, data: bytes, max_out: int = PIECE) -> Iterator[bytes]:
        """The decoded bytes of ``data``, in pieces of at most ``max_out`` bytes. Each piece is inflated only when
        the caller asks for it: a caller that stops early leaves the rest compressed."""
        if not self._kind:
            if data:
                yield data
            return
        if self._pending:
            data, self._pending = self._pending + data, b""
        while data:
            if self._z is None:
                if self._kind == "deflate" and len(data) < 2:
                    self._pending = data
                    return
                self._z = self._start(data)
            out = self._z.decompress(data, max_out)
            if out:
                yield out
            if self._z.eof:  # a gzip body may hold several members, one after another
                data, self._z = self._z.unused_data, None
            else:
                data = self._z.unconsumed_tail

    def flush(self) -> bytes:
        """Whatever the decoder still holds at the end of the body."""
        if self._z is None:
            return b""
        out: bytes = self._z.flush()
        return out

    def _start(self, first: bytes) -> Any:
        if self._kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # deflate is zlib-wrapped (RFC 9110); some servers send it raw
        wrapped = first[0] & 0x0F == 8 and ((first[0] << 8) | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
