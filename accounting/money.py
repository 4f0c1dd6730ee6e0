"""Money as the ledger counts it: exact ``Decimal`` USD, integer nano-dollars for sums, and the one way an
amount is written as text."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

NANO = Decimal("1e-9")


_ONE = Decimal(1)
_LAST_NUSD: list[tuple[Decimal | None, int]] = [(None, 0)]
"""The last amount ``to_nusd`` converted and its nano-dollars, swapped as one tuple (any thread may call it): a
request's cost is converted twice, for its ledger row and for its budgets' commit."""


def to_nusd(cost: Decimal) -> int:
    """``cost`` in integer nano-dollars (half to even)."""
    last = _LAST_NUSD[0]
    if last[0] is cost:
        return last[1]
    n = int((cost / NANO).quantize(_ONE, rounding=ROUND_HALF_EVEN))
    _LAST_NUSD[0] = (cost, n)
    return n


def from_nusd(n: int) -> Decimal:
    return Decimal(n).scaleb(-9)


_LAST_USD: list[tuple[Decimal | None, str]] = [(None, "")]
"""The last amount ``usd`` wrote and its text, swapped as one tuple (any thread may call it): a request's cost
is written three times, in its headers, its ledger row and its log line."""


def usd(d: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros (``0.004``)."""
    last = _LAST_USD[0]
    if last[0] is d:
        return last[1]
    s = format(d.normalize(), "f")
    if s == "-0":
        s = "0"
    _LAST_USD[0] = (d, s)
    return s
