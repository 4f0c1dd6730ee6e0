"""Decoding upstream answers: gzip (several members too), zlib-wrapped and raw deflate, identity; bounded pieces,
inflated only as far as they are read."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable

import pytest

from serving.decoding import Decoder, UnsupportedEncoding

TEXT = b'{"choices": [{"message": {"content": "' + b"hello " * 5000 + b'"}}]}'


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def decode(d: Decoder, pieces: Iterable[bytes], max_out: int = 1 << 20) -> bytes:
    out = b"".join(b for p in pieces for b in d.feed(p, max_out))
    return out + d.flush()


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", raw_deflate(TEXT)),
        (None, TEXT),
        ("identity", TEXT),
        (" GZIP ", gzip.compress(TEXT)),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "none", "identity", "case-and-space"],
)
def test_every_accepted_encoding_decodes_whatever_the_pieces(encoding: str | None, data: bytes) -> None:
    for size in (1, 2, 7, 1000, len(data)):
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        assert decode(Decoder(encoding), pieces) == TEXT, size


def test_a_gzip_body_of_several_members_decodes_whole() -> None:
    assert decode(Decoder("gzip"), [gzip.compress(b"abc") + gzip.compress(b"def")]) == b"abcdef"


def test_output_comes_in_pieces_no_larger_than_asked() -> None:
    bomb = gzip.compress(b"\0" * (8 << 20))
    pieces = list(Decoder("gzip").feed(bomb, 4096))
    assert len(pieces) == 2048 and max(len(p) for p in pieces) == 4096


def test_a_reader_that_stops_early_leaves_the_rest_compressed() -> None:
    """64 MiB of zeros in 64 KiB of gzip: taking the first piece inflates (about) one piece, not the body."""
    bomb = gzip.compress(b"\0" * (64 << 20))
    first = next(Decoder("gzip").feed(bomb, 65536))
    assert len(first) == 65536


def test_an_encoding_not_asked_for_is_refused() -> None:
    with pytest.raises(UnsupportedEncoding):
        Decoder("br")


def test_a_body_that_is_not_what_its_encoding_says_raises_zlib_error() -> None:
    with pytest.raises(zlib.error):
        decode(Decoder("gzip"), [b"this is not gzip at all"])
