"""What a request to an upstream is made of, prepared once: its URL split into the pool it uses and its request
line's target, and header lines that cannot end early."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# (Regular expressions, not ``b"x" in value``, which costs an exception per test in CPython 3.11.)
_BAD_NAME = re.compile(rb"[\r\n:]")


_BAD_VALUE = re.compile(rb"[\r\n]")


class Target:
    """One URL, split once: which pool it uses and the request line's target."""

    __slots__ = ("key", "host", "port", "tls", "path", "url", "host_header")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (self.host, self.port, self.tls)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self.path = path.encode("ascii")
        self.url = url
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None:
            netloc += f":{parts.port}"
        self.host_header = netloc.encode("idna")


def header_lines(headers: dict[str, str], encoding: str = "utf-8") -> bytes:
    """``name: value\r\n`` lines; a name or value that could end the line early is refused (``ValueError``)."""
    out = []
    for k, v in headers.items():
        name, value = k.encode("ascii", "replace"), v.encode(encoding, "replace")
        if _BAD_NAME.search(name) is not None or _BAD_VALUE.search(value) is not None:
            raise ValueError(f"header {k!r}: a line break or colon where none may be")
        out.append(b"%s: %s\r\n" % (name, value))
    return b"".join(out)
