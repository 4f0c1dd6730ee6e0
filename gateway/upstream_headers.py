"""The upstream's answer headers a client gets too: the provider's request id, its rate-limit headers and
OpenAI's processing time, which clients, their SDKs and their support workflows read.

They are relayed on answers, streams and errors alike, from the attempt that answered (a fallback's answer
carries the fallback's); nothing else of the upstream's answer head reaches the client — no hop-by-hop or
framing header (``connection``, ``transfer-encoding``, ``content-length``, ``content-encoding``: the gateway
frames and encodes its own answer), no ``set-cookie``, no account detail (``openai-organization``,
``openai-project``), nothing named like the gateway's own ``x-pointsman-*`` headers.

The gateway's own request id is the answer's ``x-request-id`` (the one the ledger, logs and feedback know), so an
upstream's ``x-request-id`` (OpenAI's ``req_…``; a vLLM server echoes the gateway's) comes as
``x-pointsman-upstream-request-id``: one ``x-request-id`` line per answer, and the provider's id for a support
ticket. Every other header keeps its name: Anthropic's ``request-id`` is what the Anthropic SDKs read as
``_request_id``. Rate-limit headers describe the limits of the gateway's account with the provider (shared by
every client of that backend), not the client's own (the gateway's are ``429`` with ``retry-after``).
"""

from __future__ import annotations

from collections.abc import Iterable

UPSTREAM_REQUEST_ID = b"x-pointsman-upstream-request-id"

_OPENAI_LIMITS = tuple(
    f"x-ratelimit-{what}-{unit}".encode()
    for what in ("limit", "remaining", "reset")
    for unit in ("requests", "tokens")
)
_ANTHROPIC_LIMITS = tuple(
    f"anthropic-{kind}-{part}".encode()
    for kind in (
        "ratelimit-requests",
        "ratelimit-tokens",
        "ratelimit-input-tokens",
        "ratelimit-output-tokens",
        "priority-input-tokens",
        "priority-output-tokens",
    )
    for part in ("limit", "remaining", "reset")
)

RELAYED: dict[bytes, bytes] = {
    b"x-request-id": UPSTREAM_REQUEST_ID,
    b"request-id": b"request-id",
    b"openai-processing-ms": b"openai-processing-ms",
    **{name: name for name in _OPENAI_LIMITS + _ANTHROPIC_LIMITS},
}
"""Upstream header name -> the name the client gets it under (all lowercase, as ``serving.http_client`` reads
them)."""


def relayed(lines: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The ``RELAYED`` headers among an upstream answer's header lines, under the client's names; a header the
    upstream sent on several lines only once (its first value). One dict lookup per upstream header line."""
    out: dict[bytes, bytes] = {}
    for name, value in lines:
        client_name = RELAYED.get(name)
        if client_name is not None and client_name not in out:
            out[client_name] = value
    return list(out.items())
