"""Token usage now lives in ``wire.usage``; this name stays only until ``accounting.pricing`` imports it there."""

from wire.usage import Usage, parse_usage, usage_from_response

__all__ = ["Usage", "parse_usage", "usage_from_response"]
