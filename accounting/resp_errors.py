"""The errors of the request path's Redis client (``accounting.resp``, which raises them and names them too).

Their own module because two of them extend built-in ``OSError`` subclasses, which a class compiled by mypyc
cannot: ``accounting.resp`` is compiled (``[tool.pointsman] compiled``), this module is not."""

from __future__ import annotations


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``)."""


class RespConnectionError(ConnectionError):
    """Redis could not be reached, or the connection was lost before the reply came."""


class RespTimeout(TimeoutError):
    """No connection, or no reply, within the client's timeout."""
