"""The error of the SSE relay reader (``wire.sse``, which raises it and names it too).

Its own module because ``wire.sse`` is compiled (``[tool.pointsman] compiled``) and this is not: an exception
class compiled by mypyc is a native class, and an ``except EventTooLarge as exc`` in compiled code then binds every
exception passing through that ``try`` to it (``TypeError: wire.sse.EventTooLarge object expected``)."""

from __future__ import annotations


class EventTooLarge(ValueError):
    """An upstream event grew past ``max_event_bytes`` before its blank line arrived."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an upstream event exceeded {limit} bytes before it ended")
        self.limit = limit
