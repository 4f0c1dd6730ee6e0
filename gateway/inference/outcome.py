"""The outcome a request is recorded with (ledger ``outcome``, the ``outcome`` label of
``pointsman_requests_total``), from what went wrong: one bounded vocabulary, ``accounting.metrics.OUTCOMES``."""

from __future__ import annotations

from gateway.errors import ApiError
from serving.errors import UpstreamHTTPError, UpstreamTruncated


def outcome_for(err: ApiError, exc: BaseException) -> str:
    """The outcome of a request that failed with ``exc``, answered (or its stream ended) as ``err``.

    The gateway's own refusals (``rate_limited``, ``budget_exceeded``) are kept apart from the upstream's: an
    upstream 429 is ``upstream_rate_limited``, a stream the upstream ended early ``truncated``."""
    if isinstance(exc, UpstreamHTTPError) and exc.status == 429:
        return "upstream_rate_limited"
    if isinstance(exc, UpstreamTruncated):
        return "truncated"
    status = err.status
    if status < 400:
        return "ok"
    if status == 429:
        return "budget_exceeded" if err.code == "insufficient_quota" else "rate_limited"
    if status == 504:
        return "timeout"
    if status >= 500:
        return "upstream_error"
    return "client_error"
