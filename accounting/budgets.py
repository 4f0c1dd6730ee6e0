"""Budgets as admission checks them: each configured budget compiled into one ``Budget`` per period it limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from accounting.config import AccountingConfig
from accounting.money import to_nusd


class Budget:
    """One budget of a scope and name over one period, as admission checks it."""

    __slots__ = ("scope", "name", "period", "limit", "limit_nusd", "soft", "reserve_output_tokens")

    scope: Final[str]
    name: Final[str]
    period: Final[str]
    """``daily`` or ``monthly``."""
    limit: Final[Decimal]
    limit_nusd: Final[int]
    soft: Final[float]
    reserve_output_tokens: Final[int | None]
    """Output tokens reserved for a request that names no maximum (``BudgetConfig.reserve_output_tokens``)."""

    def __init__(
        self,
        scope: str,
        name: str,
        period: str,
        limit: Decimal,
        limit_nusd: int,
        soft: float,
        reserve_output_tokens: int | None = None,
    ) -> None:
        self.scope = scope
        self.name = name
        self.period = period
        self.limit = limit
        self.limit_nusd = limit_nusd
        self.soft = soft
        self.reserve_output_tokens = reserve_output_tokens

    def _key(self) -> tuple[str, str, str, Decimal, int, float, int | None]:
        """What it is compared and hashed by."""
        return (
            self.scope,
            self.name,
            self.period,
            self.limit,
            self.limit_nusd,
            self.soft,
            self.reserve_output_tokens,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Budget):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def budgets_of(cfg: AccountingConfig) -> dict[tuple[str, str], list[Budget]]:
    """(scope, name) -> its budgets, a daily and a monthly one where both are set."""
    budgets: dict[tuple[str, str], list[Budget]] = {}
    for b in cfg.budgets:
        lst = budgets.setdefault((b.scope, b.name), [])
        for period, amount in (("daily", b.daily_usd), ("monthly", b.monthly_usd)):
            if amount is not None:
                lst.append(
                    Budget(
                        b.scope,
                        b.name,
                        period,
                        amount,
                        to_nusd(amount),
                        b.soft_threshold,
                        b.reserve_output_tokens,
                    )
                )
    return budgets
