"""Request ids: the client's ``x-request-id`` when it is safe to echo, otherwise a generated one.

Generated ids are 64 random bits per process, then a counter (32 hex chars): unique across replicas and
restarts without a syscall per request.
"""

from __future__ import annotations

import itertools
import re
import secrets

_RID_OK = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_RID_PREFIX = secrets.token_hex(8)
_rid_counter = itertools.count(secrets.randbits(40))


def request_id(raw: bytes | None) -> str:
    """The id of a request whose ``x-request-id`` header was ``raw`` (None when absent)."""
    if raw and _RID_OK.match(raw):
        return raw.decode("ascii")
    return f"{_RID_PREFIX}{next(_rid_counter):016x}"
