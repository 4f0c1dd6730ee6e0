"""A request that cannot be said in the other protocol without losing something."""

from __future__ import annotations


class Untranslatable(ValueError):
    """Raised instead of dropping a field: ``field`` is its path in the request (``messages[2].content[0]``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
